"""The edges of a supernet cell: what computes ``sum_k w[k] * op_k(x)`` on one edge.

:class:`MixedEdge` runs every kept candidate op; an *edge factory* (``factory(spec, source) ->
module``) builds one edge of a cell, so a method can swap in another edge (PC-DARTS' partial
channels in :mod:`.partial`, the ``none``-free edge in :mod:`.nonzero`) without touching the cell.

Every edge also has :meth:`MixedEdge.fast_forward`, the cell's fast path (docs/performance.md):
the same sum, but without the ops whose fixed weight is zero and without ``none`` (both add an
exact zero), with parameter-free ops (pools) computed once per input node and shared by every
edge of the cell that reads that node, and with each weighted term added by one fused
``addcmul`` instead of a multiply and an add.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

import torch
from torch import nn

from ...models.ops import Zero
from ...spaces.cell import CellSpec

#: Parameter-free, deterministic ops whose output depends only on their input and their own
#: configuration: two edges reading the same node compute the same tensor with them, so the fast
#: path computes it once per cell forward (:func:`shared_op`).
SHAREABLE: tuple[type[nn.Module], ...] = (nn.MaxPool2d, nn.AvgPool2d)


def shared_op(op: nn.Module, x: torch.Tensor, shared: dict[Hashable, torch.Tensor] | None,
              key: Hashable) -> torch.Tensor:
    """``op(x)``, read from / stored in ``shared`` under ``(key, repr(op))`` when ``op`` is shareable.

    ``key`` names the input (the source node, and the channel slice an edge reads); ``repr`` of a
    pool names its kernel, stride, padding and modes, so only identical ops share an output.
    """
    if shared is None or type(op) not in SHAREABLE:
        return op(x)
    slot = (key, type(op), repr(op))
    out = shared.get(slot)
    if out is None:
        out = shared[slot] = op(x)
    return out


def weighted_sum(terms: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor | None:
    """``sum w * y`` over ``(w, y)`` pairs, one fused ``addcmul`` per term after the first."""
    out = None
    for w, y in terms:
        out = w * y if out is None else torch.addcmul(out, w, y)
    return out


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

    def live_ops(self, weights: Sequence[torch.Tensor], live: Sequence[bool] | None) -> list[tuple[int, nn.Module]]:
        """``(index, op)`` of the kept ops the fast path computes: not ``none``, not a fixed zero weight."""
        return [(k, op) for k, op in zip(self.kept, self.ops, strict=True)
                if not isinstance(op, Zero) and (live is None or live[k])]

    def fast_forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor], live: Sequence[bool] | None,
                     shared: dict[Hashable, torch.Tensor] | None, key: Hashable) -> torch.Tensor | None:
        """The fast path of :meth:`forward` (module docstring); ``None`` when no op contributes.

        Args:
            x: the source node's state ``[N, C, H, W]``.
            weights: the edge's op weights, one 0-d tensor per op of the cell's op list.
            live: per op, whether its weight may be non-zero (``None``: all may); a fixed zero
                weight (no gradient) adds an exact zero, so its op is not run.
            shared: the cell forward's store of shared parameter-free op outputs (``None``: no sharing).
            key: names ``x`` in ``shared`` (the source node).
        """
        return weighted_sum((weights[k], shared_op(op, x, shared, key)) for k, op in self.live_ops(weights, live))

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
