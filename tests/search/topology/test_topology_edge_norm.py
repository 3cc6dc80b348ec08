"""PC-DARTS' edge normalisation: a softmax over each node's input edges."""

from __future__ import annotations

import torch

from nni_decouple.search.graph import CellGraph
from nni_decouple.search.topology import TOPOLOGIES
from nni_decouple.search.topology.edge_norm import EdgeNormalisation  # noqa: F401  (registers edge_norm)
from nni_decouple.spaces.cell import CellSpec


def test_edge_weights_are_a_softmax_per_node() -> None:
    graph = CellGraph(4)
    topology = TOPOLOGIES["edge_norm"](graph, CellSpec(("skip_connect",), 4, False, False, 4, 0), "normal", {})
    assert sum(p.numel() for p in topology.arch_parameters()) == graph.num_edges
    with torch.no_grad():
        topology.beta.copy_(torch.randn(graph.num_edges) * 3)
    weights = topology()
    for j in graph.node_ids:
        edges = list(graph.in_edges(j))
        assert torch.allclose(weights[edges], torch.softmax(topology.beta[edges], dim=0))
    weights.sum().backward()  # differentiable
    assert topology.beta.grad is not None
