"""Stretchable Cells' output-edge topology: merged weights (Eq. 9-13), r(beta) (Eq. 14), counts."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nni_decouple.search.graph import CellGraph
from nni_decouple.search.topology import TOPOLOGIES
from nni_decouple.search.topology.output import OutputTopology, num_topology_parameters


def _node_probs(topology: OutputTopology, node: int) -> dict[tuple[int, ...], float]:
    """p(b_i) by explicit exponentials over the node's slice of beta (no padding, no softmax call)."""
    beta = topology.beta.detach().double()
    entries = {code: float(beta[topology.beta_index(node, code)]) for code in topology.codes[node]}
    z = sum(math.exp(v) for v in entries.values())
    return {code: math.exp(v) / z for code, v in entries.items()}


@pytest.mark.parametrize("rule", ["even", "printed"])
@pytest.mark.parametrize("num_nodes", [1, 2, 3, 4])
def test_any_codes_merge_as_eq13_brute_force(num_nodes, rule):
    graph = CellGraph(num_nodes)
    topology = OutputTopology(graph, "any", init_scale=1.0, scale=rule)
    s = topology().detach().double()
    for i in [0, 1, *graph.node_ids]:
        succ = [t for src, t in graph.edges if src == i]
        n = len(succ)
        # the node's codes are exactly every binary vector b_i over its successors (Eq. 11)
        subsets = {tuple(t for t, b in zip(succ, bits, strict=True) if b)
                   for bits in itertools.product([0, 1], repeat=n)}
        assert set(topology.codes[i]) == subsets and len(topology.codes[i]) == 2 ** n
        if n == 0:
            continue
        p = _node_probs(topology, i)
        for j in succ:
            # Eq. 13 as printed; with the empty code "even" scales by 2^n / 2^(n-1) = 2 instead
            factor = (2 ** n - 1) / 2 ** (n - 1) if rule == "printed" else 2.0
            expected = factor * sum(prob for code, prob in p.items() if j in code)
            assert float(s[graph.index(i, j)]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("num_nodes", [2, 3, 4, 5])
def test_pair_codes_merge_as_eq10_brute_force(num_nodes):
    graph = CellGraph(num_nodes)
    topology = OutputTopology(graph, "two", init_scale=1.0)
    s = topology().detach().double()
    for i in [0, 1, *graph.node_ids]:
        succ = [t for src, t in graph.edges if src == i]
        n = len(succ)
        if n < 2:  # no pair: such a node sends no edge
            assert all(float(s[graph.index(i, j)]) == 0.0 for j in succ)
            continue
        p = _node_probs(topology, i)
        for j in succ:
            merged = sum(p[(k, j)] for k in succ if k < j) + sum(p[(j, k)] for k in succ if k > j)  # Eq. 9
            expected = math.comb(n, 2) / math.comb(n - 1, 1) * merged  # Eq. 10
            assert float(s[graph.index(i, j)]) == pytest.approx(expected, rel=1e-5)


def test_uniform_codes_give_unit_scaled_weights():
    graph = CellGraph(4)
    pairs = OutputTopology(graph, "two", init_scale=0.0)()
    assert torch.allclose(pairs[pairs > 0], torch.ones(1))  # Eq. 10's purpose
    nonempty = OutputTopology(graph, "any", include_empty=False, init_scale=0.0)()
    assert torch.allclose(nonempty, torch.ones_like(nonempty))  # Eq. 13 normalises the non-empty codes


def test_pairs_keep_the_dart_edge_count():
    """The paper's "w/o SC" keeps DARTS' 8 edges with 4 nodes: 4 nodes choose 2 output edges each."""
    topology = OutputTopology(CellGraph(4), "two", init_scale=1.0)
    assert len(topology.kept_edges()) == 8


@pytest.mark.parametrize("num_nodes", [2, 4, 7])
def test_number_of_topology_parameters_follows_the_formula(num_nodes):
    graph = CellGraph(num_nodes)
    any_codes = OutputTopology(graph, "any")
    # inputs: 2^N codes each; intermediate node k (0-based): 2^(N-1-k) codes
    assert any_codes.beta.numel() == 2 * 2 ** num_nodes + sum(2 ** k for k in range(num_nodes))
    assert any_codes.beta.numel() == 3 * 2 ** num_nodes - 1 == num_topology_parameters(num_nodes)
    pairs = OutputTopology(graph, "two")
    assert pairs.beta.numel() == 2 * math.comb(num_nodes, 2) + sum(math.comb(k, 2) for k in range(num_nodes))
    assert pairs.beta.numel() == num_topology_parameters(num_nodes, "two")


def test_paper_n9_has_191_parameters_per_cell():
    # The paper's N = 9 counts nodes the DARTS way (2 inputs, 1 output): 6 intermediate nodes,
    # sum over nodes of 2^(successors).
    assert OutputTopology(CellGraph(6), "any").beta.numel() == 191


@pytest.mark.parametrize("num_nodes", [2, 4, 6, 7])
@pytest.mark.parametrize("edges,include_empty", [("any", True), ("any", False), ("two", False)])
def test_scale_evens_out_starting_edge_weights(num_nodes, edges, include_empty):
    """Eq. 10 / Eq. 13's purpose: at uniform code probabilities every edge that some code feeds
    weighs 1, also with the empty code (issue 20, finding 4: was 0.5 .. 0.99 with it)."""
    topology = OutputTopology(CellGraph(num_nodes), edges, include_empty=include_empty, init_scale=0.0)
    weights = topology()[topology.has_codes & (topology.scales > 0)]
    assert weights.numel() > 0
    assert torch.allclose(weights, torch.ones_like(weights), atol=1e-6)


def test_printed_scale_rule_keeps_eq13_as_printed():
    topology = OutputTopology(CellGraph(7), "any", include_empty=True, scale="printed", init_scale=0.0)
    weights = topology().detach()
    assert float(weights.max()) == pytest.approx(1 - 2 ** -7, abs=1e-6)  # the cell inputs
    assert float(weights[weights > 0].min()) == pytest.approx(0.5, abs=1e-6)  # the second-to-last node


def _valid_codes() -> dict[int, tuple[int, ...]]:
    # 3 nodes (2, 3, 4): every node gets an input
    return {0: (2,), 1: (3,), 2: (4,), 3: (), 4: ()}


def test_regularizer_is_zero_for_a_valid_topology():
    topology = OutputTopology(CellGraph(3), "any", reg_lambda=10.0)
    topology.set_codes(_valid_codes())
    assert topology.chosen_codes() == _valid_codes()
    reg = topology.regularizer()
    assert reg is not None and float(reg.detach()) == 0.0
    reg.backward()
    assert float(topology.beta.grad.abs().sum()) == 0.0  # passive: no pull on a valid topology


def test_regularizer_punishes_a_node_without_inputs():
    topology = OutputTopology(CellGraph(3), "any", reg_lambda=10.0)
    topology.set_codes({0: (2,), 1: (2,), 2: (4,), 3: (4,), 4: ()})  # nothing feeds node 3
    r = topology.invalidity()
    # node 3's predecessors 0, 1, 2 all keep it out: prod (1 - exp(-margin)) per predecessor
    expected = (1 - math.exp(-5.0)) ** 3
    assert float(r.detach()) == pytest.approx(expected, rel=1e-5)
    reg = topology.regularizer()
    assert float(reg.detach()) == pytest.approx(10 * expected, rel=1e-5)
    reg.backward()
    grad = topology.beta.grad
    # aggressive: descending r raises the best code that feeds node 3 for each predecessor
    for node in (0, 1, 2):
        best_feeding = max((c for c in topology.codes[node] if 3 in c),
                           key=lambda c: float(topology.beta.detach()[topology.beta_index(node, c)]))
        assert float(grad[topology.beta_index(node, best_feeding)]) < 0


def test_regularizer_lambda_zero_is_off():
    topology = OutputTopology(CellGraph(3), "any", reg_lambda=0.0)
    assert topology.regularizer() is None


def test_registered_and_gradients_reach_beta():
    graph = CellGraph(3)
    topology = TOPOLOGIES["output_any"](graph, None, "normal", {})
    assert isinstance(topology, OutputTopology) and topology.edges == "any"
    topology().sum().backward()
    assert topology.beta.grad is not None and float(topology.beta.grad.abs().sum()) > 0
    assert TOPOLOGIES["output_pairs"](graph, None, "normal", {}).edges == "two"
