"""Gumbel-softmax op weights (GDAS, Dong & Yang 2019; NNI's ``GumbelDARTS``).

In training mode every call draws ``gumbel_softmax(alpha, tau)`` per edge (soft by default, as
NNI's ``GumbelDARTS``; ``hard=True`` gives GDAS' straight-through one-hot). Like NNI, each cell
draws its own sample, so cells sharing a label share ``alpha`` but not the noise. In eval mode and
for derivation (:meth:`logits`) the weights are the noise-free ``softmax(alpha)``. Schedules anneal
``tau`` through the attribute (GDAS: 10 -> 0.1).

Registered entry: ``gumbel`` (options ``tau``, ``hard``, ``init_scale``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...spaces.cell import CellSpec
from ..graph import CellGraph
from . import OpWeights, register_weights


class GumbelSoftmaxWeights(OpWeights):
    """``gumbel_softmax(alpha[e], tau)`` per edge while training; ``softmax(alpha[e])`` otherwise."""

    def __init__(self, graph: CellGraph, op_names: tuple[str, ...], tau: float = 10.0, hard: bool = False,
                 init_scale: float = 1e-3) -> None:
        super().__init__(graph, op_names)
        self.tau, self.hard = float(tau), bool(hard)
        self.alpha = nn.Parameter(init_scale * torch.randn(graph.num_edges, len(op_names)))

    def forward(self) -> torch.Tensor:
        if self.training:
            return F.gumbel_softmax(self.alpha, tau=self.tau, hard=self.hard, dim=-1)
        return torch.softmax(self.alpha, dim=-1)

    def logits(self) -> torch.Tensor:
        """Noise-free ``softmax(alpha)``: what derivation and pruning rank ops by."""
        return torch.softmax(self.alpha, dim=-1)


@register_weights("gumbel")
def _gumbel(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], **options: Any) -> OpWeights:
    return GumbelSoftmaxWeights(graph, spec.op_names, **options)
