"""Edge factory that skips the ``none`` op: ``w * 0`` adds nothing and carries no gradient.

A :class:`~nni_decouple.search.edges.MixedEdge` computes ``sum_k w[k] * op_k(x)`` over every kept
op, including DARTS' ``none`` (a zero tensor of the output shape). That term is identically zero in
value and in gradient (``d/dw_none = <grad, 0> = 0``; the other ops' weights still see ``w_none``
through their softmax), so this edge leaves it out: the same function, one op and one weighted add
fewer per edge. It matters most in DOTS' topology stage, where ``none`` often survives as its
edge's non-parametric op and is one of only two ops left. An edge whose only kept ops are ``none``
returns that zero tensor.
"""

from __future__ import annotations

import torch

from ...models.ops import Zero
from . import MixedEdge


class NonZeroMixedEdge(MixedEdge):
    """:class:`MixedEdge` that does not compute ``none`` (see module docstring)."""

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for k, op in zip(self.kept, self.ops, strict=True):
            if isinstance(op, Zero):
                continue
            y = weights[k] * op(x)
            out = y if out is None else out + y
        return self.ops[0](x) if out is None else out
