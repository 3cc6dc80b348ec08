"""DOTS' topology over input-edge combinations: edge weights are summed combination probabilities."""

from __future__ import annotations

import itertools

import pytest
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.search.graph import CellGraph
from nni_decouple.search.topology import TOPOLOGIES
from nni_decouple.search.topology.input import InputCombinationTopology, input_combinations


def brute_force(topology: InputCombinationTopology, graph: CellGraph, sizes: range | tuple[int, ...]) -> torch.Tensor:
    """Enumerate every combination of every node's inputs and sum the probabilities per edge."""
    weights = torch.zeros(graph.num_edges)
    for node_pos, j in enumerate(graph.node_ids):
        combos = [c for k in sizes for c in itertools.combinations(range(j), k)]
        probs = torch.softmax(topology.beta[node_pos].detach() / topology.temperature, dim=-1)
        assert len(combos) == len(probs)
        for combo, p in zip(topology.combinations(j), probs, strict=True):
            assert combo in combos
            for source in combo:
                weights[graph.index(source, j)] += p
    return weights


def randomise(topology: InputCombinationTopology) -> None:
    with torch.no_grad():
        for beta in topology.beta:
            beta.normal_(0.0, 2.0)


@pytest.mark.parametrize("nodes", [1, 4, 5])
def test_pairs_edge_weight_is_the_summed_probability_of_pairs_containing_it(nodes: int) -> None:
    graph = CellGraph(nodes)
    topology = TOPOLOGIES["input_pairs"](graph, None, "normal", {}, temperature=0.7)
    randomise(topology)
    expected = brute_force(topology, graph, (2,))
    torch.testing.assert_close(topology().detach(), expected)
    if nodes == 4:  # the published parameter count: 1 + 3 + 6 + 10
        assert sum(b.numel() for b in topology.beta) == 20
    # pairs: every node's edge weights add up to 2 (each pair has two edges)
    for j in graph.node_ids:
        assert float(topology().detach()[list(graph.in_edges(j))].sum()) == pytest.approx(2.0)


def test_any_combination_edge_weights_match_brute_force_and_exclude_the_empty_set() -> None:
    graph = CellGraph(4)
    topology = TOPOLOGIES["input_any"](graph, None, "normal", {}, temperature=1.3)
    randomise(topology)
    assert [len(topology.combinations(j)) for j in graph.node_ids] == [3, 7, 15, 31]  # 2^n - 1: no empty set
    assert all(len(c) >= 1 for j in graph.node_ids for c in topology.combinations(j))
    torch.testing.assert_close(topology().detach(), brute_force(topology, graph, range(1, 6)))


def test_any_with_size_bounds() -> None:
    graph = CellGraph(3)
    topology = TOPOLOGIES["input_any"](graph, None, "normal", {}, min_edges=2, max_edges=3)
    randomise(topology)
    assert [len(topology.combinations(j)) for j in graph.node_ids] == [1, 3 + 1, 6 + 4]
    torch.testing.assert_close(topology().detach(), brute_force(topology, graph, (2, 3)))
    with pytest.raises(ConfigError, match="min_edges"):
        TOPOLOGIES["input_any"](graph, None, "normal", {}, min_edges=3, max_edges=2)
    with pytest.raises(ConfigError, match="no combination"):
        InputCombinationTopology(graph, (3,))  # node 2 has only two inputs


def test_gradient_flows_to_beta_and_temperature_sharpens() -> None:
    graph = CellGraph(3)
    topology = InputCombinationTopology(graph, (2,), init_scale=1.0)
    (topology() * torch.arange(graph.num_edges, dtype=torch.float)).sum().backward()
    assert all(b.grad is not None for b in topology.beta[1:])  # node 2 has a single pair: constant weights
    topology.temperature = 1e-3
    weights = topology().detach()
    for j in graph.node_ids:  # near zero temperature the node's best pair gets weight ~1 on its two edges
        best = topology.best_combination(j)
        chosen = [graph.index(i, j) for i in best]
        assert torch.allclose(weights[chosen], torch.ones(2), atol=1e-4)


def test_disabled_topology_weighs_every_edge_one() -> None:
    topology = InputCombinationTopology(CellGraph(2), (2,))
    topology.enabled = False
    assert topology() is None


def test_best_combination_is_the_argmax() -> None:
    graph = CellGraph(4)
    topology = InputCombinationTopology(graph, (2,))
    with torch.no_grad():
        topology.beta[3][input_combinations(5, (2,)).index((1, 4))] = 5.0
    assert topology.best_combination(5) == (1, 4)
    assert topology.best_combination(2) == (0, 1)
