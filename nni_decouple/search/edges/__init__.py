"""The edges of a supernet cell: what computes ``sum_k w[k] * op_k(x)`` on one edge.

:class:`MixedEdge` runs every kept candidate op; an *edge factory* (``factory(spec, source) ->
module``) builds one edge of a cell, so a method can swap in another edge (PC-DARTS' partial
channels in :mod:`.partial`, the ``none``-free edge in :mod:`.nonzero`) without touching the cell.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...spaces.cell import CellSpec


class MixedEdge(nn.Module):
    """All candidate ops of one edge; ``forward(x, w) = sum_k w[k] * op_k(x)`` over the kept ops.

    :meth:`prune` drops ops for good (their modules are freed), as DOTS' topology stage does.
    """

    def __init__(self, spec: CellSpec, source: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(spec.make_op(name, source) for name in spec.op_names)
        self.kept: list[int] = list(range(len(spec.op_names)))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for k, op in zip(self.kept, self.ops, strict=True):
            y = weights[k] * op(x)
            out = y if out is None else out + y
        return out  # type: ignore[return-value]

    def prune(self, keep: list[int]) -> None:
        """Keep only the ops whose indices (into the cell's op list) are in ``keep``."""
        keep = sorted(keep)
        position = {k: p for p, k in enumerate(self.kept)}
        missing = [k for k in keep if k not in position]
        if missing:
            raise ValueError(f"cannot keep ops {missing}: they were pruned before")
        self.ops = nn.ModuleList(self.ops[position[k]] for k in keep)
        self.kept = keep

    def get_extra_state(self) -> list[int]:
        return list(self.kept)

    def set_extra_state(self, state: list[int]) -> None:
        if list(state) != self.kept:
            self.prune(list(state))


EdgeFactory = Callable[[CellSpec, int], nn.Module]
