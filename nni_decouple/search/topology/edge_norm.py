"""Topology "edge_norm": PC-DARTS' edge normalisation (Xu et al., ICLR 2020, Eq. 4).

Every edge ``(i, j)`` gets a parameter ``beta[i, j]``; node ``j`` weighs its input edges by
``softmax(beta[., j])`` over those edges. With partial channels the op weights of an edge
fluctuate as the sampled channels change; the edge weights, shared by all channel samples,
stabilise which edges a node keeps. DARTS' top-2 derivation multiplies an edge's op weights by
its edge weight (:func:`~nni_decouple.search.derive.derive_topk` does), as PC-DARTS' genotype does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...spaces.cell import CellSpec
from ..graph import CellGraph
from . import Topology, register_topology


class EdgeNormalisation(Topology):
    """``[num_edges]`` edge weights: a softmax over each node's input edges."""

    def __init__(self, graph: CellGraph, init_scale: float = 1e-3) -> None:
        super().__init__(graph)
        self.beta = nn.Parameter(init_scale * torch.randn(graph.num_edges))

    def forward(self) -> torch.Tensor:
        return torch.cat([torch.softmax(self.beta[list(self.graph.in_edges(j))], dim=0) for j in self.graph.node_ids])


@register_topology("edge_norm")
def _edge_norm(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], **options: Any) -> Topology:
    return EdgeNormalisation(graph, **options)
