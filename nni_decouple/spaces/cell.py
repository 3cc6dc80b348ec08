"""The DARTS-family cell search space as an NNI ``ModelSpace``.

A stem, ``layers`` cells with reductions at ``L // 3`` and ``2L // 3``, global pooling and a
linear classifier. Every cell is a plain NNI :class:`~nni.nas.nn.pytorch.Cell` (``num_nodes``
intermediate nodes, two predecessors, ``ops_per_node`` inputs per node, all nodes concatenated),
so NNI's own ``DARTS()`` and ``GumbelDARTS()`` search it unchanged. The labels decide the
sharing: one label per cell type (``normal``/``reduce``, DARTS) or one per layer
(``normal_3``/``reduce_5``, global search as in DNAS and D-DARTS).

Each cell also carries a :class:`CellSpec` (``cell.spec``) so that this package's supermodules
can rebuild its candidate ops (e.g. at a fraction of the channels for partial connections).

Strides: in a reduction cell an op reading a cell input (0, 1) has stride 2 and one reading an
intermediate node stride 1, so an op can only be built once its input is known. NNI builds the
mutable cell before that (the factory gets ``input_index=None``; those ops serve the dry run, which
reads input 0); every strategy then builds the ops it runs per input: ``Cell.freeze`` (multi-trial)
with the chosen input, DARTS/GumbelDARTS and RandomOneShot/ENAS through their supernet cells, and
Proxyless, which has none in NNI, through :class:`~nni_decouple.spaces.proxyless.ProxylessMixedCell`
(registered by :meth:`CellSpace.extra_oneshot_hooks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import nn

from ..data import DatasetInfo
from ..errors import ConfigError
from ..models.blocks import CellPreprocessor, Stem, make_stem
from ..models.genotype import cell_label, reduction_layers
from ..models.ops import create_op, resolve_ops
from ..nni_noise import importing_nni, quiet_nni_logs

with importing_nni():
    from nni.nas.nn.pytorch import Cell, ModelSpace
quiet_nni_logs()  # NNI's per-run training_service warning, by message (see nni_noise)

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
    # input_index=None: NNI's mutable cell, before any input is chosen. Its dry run reads input 0 (a cell
    # input); a strategy that runs these ops on other inputs must rebuild them per input (module doc).
    return spec.make_op(name, 0 if input_index is None else input_index)


def _from_dataset(dataset: DatasetInfo | None, **given: int | None) -> tuple[int, int]:
    """``num_classes`` and ``in_chans``: given, else the dataset's, else 10 and 3."""
    if dataset is not None and not isinstance(dataset, DatasetInfo):
        raise ConfigError(f"dataset must be the DatasetInfo that build_datasets returns (train, test, info), "
                          f"got {type(dataset).__name__}")
    values = []
    for name, default in (("num_classes", 10), ("in_chans", 3)):
        value = given[name]
        if dataset is not None:
            if value is not None and value != getattr(dataset, name):
                raise ConfigError(f"{name}={value!r} contradicts dataset {dataset.name!r} "
                                  f"({name}={getattr(dataset, name)}): leave {name} out")
            value = getattr(dataset, name)
        values.append(default if value is None else value)
    return values[0], values[1]


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
    num_classes, in_chans
        Classifier outputs and image channels; default from ``dataset``, else 10 and 3.
    dataset
        The :class:`~nni_decouple.data.DatasetInfo` that :func:`~nni_decouple.data.build_datasets` returns:
        gives ``num_classes`` and ``in_chans`` (a conflicting explicit value is a :class:`ConfigError`).
    """

    def __init__(self, ops: str | Sequence[str] = "darts", channels: int = 16, layers: int = 8, nodes: int = 4,
                 num_classes: int | None = None, in_chans: int | None = None, sharing: Sharing = "type",
                 stem: Stem = "cifar", ops_per_node: int = 2, stem_multiplier: int = 3, affine: bool = False,
                 reductions: Sequence[int] | None = None, dataset: DatasetInfo | None = None) -> None:
        super().__init__()
        num_classes, in_chans = _from_dataset(dataset, num_classes=num_classes, in_chans=in_chans)
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

    def extra_oneshot_hooks(self, strategy: Any) -> list[Any]:
        """NNI's hook for model-defined supernet modules: Proxyless gets a cell that builds every op for the
        input it reads (NNI has no Proxyless cell; see :mod:`nni_decouple.spaces.proxyless`)."""
        from nni.nas.strategy import Proxyless

        from .proxyless import ProxylessMixedCell

        return [ProxylessMixedCell.mutate] if isinstance(strategy, Proxyless) else []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem_kind == "cifar":
            s0 = s1 = self.stem(x)
        else:
            s0, s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = cell([s0, s1])
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))
