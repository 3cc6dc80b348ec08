"""The DARTS-family cell search space as an NNI ``ModelSpace``.

A stem, ``layers`` cells with reductions at ``L // 3`` and ``2L // 3``, global pooling and a
linear classifier. Every cell is a plain NNI :class:`~nni.nas.nn.pytorch.Cell` (``num_nodes``
intermediate nodes, two predecessors, ``ops_per_node`` inputs per node, all nodes concatenated),
so NNI's own ``DARTS()`` and ``GumbelDARTS()`` search it unchanged. The labels decide the
sharing: one label per cell type (``normal``/``reduce``, DARTS) or one per layer
(``normal_3``/``reduce_5``, global search as in DNAS and D-DARTS).

Each cell also carries a :class:`CellSpec` (``cell.spec``) so that this package's supermodules
can rebuild its candidate ops (e.g. at a fraction of the channels for partial connections).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..models.blocks import CellPreprocessor, Stem, make_stem
from ..models.genotype import cell_label, reduction_layers
from ..models.ops import create_op, resolve_ops

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.nn.pytorch import Cell, ModelSpace

Sharing = Literal["type", "layer"]


@dataclass(frozen=True)
class CellSpec:
    """What a supermodule needs to rebuild a cell's candidate ops."""

    op_names: tuple[str, ...]
    channels: int
    reduction: bool
    reduction_prev: bool
    num_nodes: int
    layer: int
    affine: bool = False

    def stride(self, source: int) -> int:
        """Edges from the cell inputs (0, 1) downsample in a reduction cell."""
        return 2 if self.reduction and source < 2 else 1

    def make_op(self, name: str, source: int, channels: int | None = None) -> nn.Module:
        return create_op(name, channels or self.channels, self.stride(source), self.affine)


class CellPostprocessor(nn.Module):
    """Return ``[previous, this]`` so that cells chain as ``s0, s1 = cell([s0, s1])``."""

    def forward(self, this_cell: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [inputs[-1], this_cell]


def _cell_op(node_index: int, op_index: int, input_index: int | None, *, name: str, spec: CellSpec) -> nn.Module:
    # NNI calls the factory with input_index=None while building the mutable space; the
    # reduction stride then applies, as every op must be able to take a cell input.
    return spec.make_op(name, 0 if input_index is None else input_index)


class CellSpace(ModelSpace):
    """DARTS-family cell space.

    Parameters
    ----------
    ops
        Candidate op names, or an op-set name (``darts``, ``darts_no_none``, ``s_o``, ...).
    channels, layers, nodes
        Initial channels C, number of cells L, intermediate nodes N per cell.
    sharing
        ``type``: one cell per type (DARTS); ``layer``: every layer its own cell (global search).
    stem
        ``cifar`` (stride 1, 3C channels) or ``imagenet`` (DARTS' three-conv stem, stride 8).
    ops_per_node
        Inputs per node in the NNI cell (2 in DARTS); strategies of this package may derive any.
    reductions
        Layer indices of the reduction cells; ``None`` gives DARTS' ``L // 3`` and ``2L // 3``. Handcrafted
        layouts need others (D-DARTS' DARTOpti ResNets reduce at cells 1, 2 and 3).
    """

    def __init__(self, ops: str | Sequence[str] = "darts", channels: int = 16, layers: int = 8, nodes: int = 4,
                 num_classes: int = 10, in_chans: int = 3, sharing: Sharing = "type", stem: Stem = "cifar",
                 ops_per_node: int = 2, stem_multiplier: int = 3, affine: bool = False,
                 reductions: Sequence[int] | None = None) -> None:
        super().__init__()
        op_names = tuple(resolve_ops(ops))
        if sharing not in ("type", "layer"):
            raise ConfigError(f"unknown sharing {sharing!r}: use 'type' (per cell type) or 'layer' (per layer)")
        for name, value, low in (("channels", channels, 2), ("nodes", nodes, 1), ("num_classes", num_classes, 1),
                                 ("in_chans", in_chans, 1), ("ops_per_node", ops_per_node, 1)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if channels % 2:
            raise ConfigError(f"channels must be even (reductions halve with two 1x1 convs), got {channels}")
        if reductions is None:
            reductions = reduction_layers(layers)
        else:
            reductions = tuple(reductions)
            if (not all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < layers for r in reductions)
                    or len(set(reductions)) != len(reductions)):
                raise ConfigError(f"reductions {list(reductions)} must be distinct layer indices in 0..{layers - 1}")
        self.op_names, self.num_layers, self.num_nodes, self.sharing = op_names, layers, nodes, sharing
        self.reductions = reductions
        self.stem_kind = stem

        if stem == "cifar":
            c_stem = stem_multiplier * channels
            self.stem, _ = make_stem(stem, in_chans, c_stem)
            c_pprev, c_prev = c_stem, c_stem
            reduction_prev = False
        else:
            self.stem, _ = make_stem(stem, in_chans, channels)
            c_pprev, c_prev = channels, channels
            reduction_prev = True

        self.cells = nn.ModuleList()
        c = channels
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            spec = CellSpec(op_names, c, reduction, reduction_prev, nodes, i, affine)
            cell = Cell(
                {name: partial(_cell_op, name=name, spec=spec) for name in op_names},
                num_nodes=nodes, num_ops_per_node=ops_per_node, num_predecessors=2, merge_op="all",
                preprocessor=CellPreprocessor(c_pprev, c_prev, c, reduction_prev, affine),
                postprocessor=CellPostprocessor(),
                label=cell_label(i, reduction, sharing == "layer"),
            )
            cell.spec = spec
            self.cells.append(cell)
            c_pprev, c_prev = c_prev, nodes * c
            reduction_prev = reduction
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem_kind == "cifar":
            s0 = s1 = self.stem(x)
        else:
            s0, s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = cell([s0, s1])
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))
