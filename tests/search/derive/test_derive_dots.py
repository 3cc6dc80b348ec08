"""DOTS derivation: argmax combination per node, argmax op per chosen edge, never ``none``."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import Genotype
from nni_decouple.runner.evaluator import SearchModule
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.dots import DOTS


def first_cell(**options) -> tuple[DecoupledCell, object]:
    strategy = DOTS(**options)
    net = strategy.mutate_model(CellSpace(ops="darts", channels=4, layers=3, nodes=4, in_chans=1))
    module = strategy.configure_oneshot_module(SearchModule())
    module.set_model(net)
    return next(m for m in net.modules() if isinstance(m, DecoupledCell)), module


def test_derivation_never_picks_none_even_when_none_dominates() -> None:
    cell, module = first_cell()
    w = cell.op_weights
    with torch.no_grad():
        w.search.alpha.zero_()
        w.search.alpha[:, 0] = 5.0  # none wins the non-parametric group on every edge
        w.search.alpha[:, 6] = 1.0  # dil_conv_3x3 wins the parametric group
    module.prune_supernet()
    with torch.no_grad():
        w.alpha_choice[:, 0] = 3.0  # ... and the near-hard choice prefers none
    w.temperature = 0.02
    assert bool((cell.edge_op_weights()[:, 0] > 0.999).all())  # none has (almost) all the weight
    genotype = cell.derive()
    assert "none" not in genotype.ops()
    assert set(genotype.ops()) == {"dil_conv_3x3"}


def test_topology_picks_the_edges_and_the_choice_picks_the_op() -> None:
    cell, module = first_cell()
    w, topology, graph = cell.op_weights, cell.topology, cell.graph
    with torch.no_grad():
        w.search.alpha.normal_()
    module.prune_supernet()
    with torch.no_grad():
        w.alpha_choice.normal_()
        for beta in topology.beta:
            beta.normal_()
        # edge 1 -> 5 has a huge op weight, but its node's best pair excludes it
        topology.beta[3].fill_(-5.0)
        topology.beta[3][topology.combinations(5).index((0, 2))] = 5.0
    genotype = cell.derive()
    for node_pos, j in enumerate(graph.node_ids):
        sources = [e.source for e in genotype.nodes[node_pos]]
        assert tuple(sources) == topology.best_combination(j)
        for edge in genotype.nodes[node_pos]:
            e = graph.index(edge.source, j)
            kept = cell.edges[e].kept
            choice = w.alpha_choice[e].detach()
            candidates = [(float(choice[p]), k) for p, k in enumerate(w.kept[e].tolist()) if k != 0]
            assert edge.op == cell.spec.op_names[max(candidates)[1]]
            assert cell.spec.op_names.index(edge.op) in kept
    assert [e.source for e in genotype.nodes[3]] == [0, 2]
    Genotype(normal=genotype, reduce=genotype).validate()


def test_any_edges_derive_any_in_degree() -> None:
    cell, _ = first_cell(edges="any")
    with torch.no_grad():
        for beta in cell.topology.beta:
            beta.zero_()
        cell.topology.beta[2][cell.topology.combinations(4).index((0, 1, 3))] = 1.0
        cell.topology.beta[3][cell.topology.combinations(5).index((4,))] = 1.0
    genotype = cell.derive()
    assert [len(node) for node in genotype.nodes] == [1, 1, 3, 1]
    assert [e.source for e in genotype.nodes[3]] == [4]
    assert "none" not in genotype.ops()


def test_dots_derivation_needs_an_input_topology() -> None:
    from nni_decouple.search.derive.dots import derive_dots

    cell, _ = first_cell()
    cell.topology = torch.nn.Module()
    with pytest.raises(ConfigError, match="input_pairs"):
        derive_dots(cell)
