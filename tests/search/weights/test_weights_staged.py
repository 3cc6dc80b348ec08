"""Survivor op weights: pruning to each group's best op, then the near-hard choice between them."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.models.ops import DARTS_OPS
from nni_decouple.runner.evaluator import SearchModule
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.search.graph import CellGraph
from nni_decouple.search.weights.grouped import GroupedSoftmaxWeights
from nni_decouple.search.weights.staged import SurvivorWeights
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.dots import DOTS


def supernet(**options):
    strategy = DOTS(**options)
    net = strategy.mutate_model(CellSpace(ops="darts", channels=4, layers=3, nodes=3, in_chans=1))
    module = strategy.configure_oneshot_module(SearchModule())
    module.set_model(net)
    return net, module


def test_pruning_keeps_one_op_per_group_per_edge() -> None:
    net, module = supernet()
    weights = module.survivor_modules()
    assert len(weights) == 2  # normal and reduce
    for w in weights:
        with torch.no_grad():
            w.search.alpha.normal_(0.0, 1.0)
    best = {id(w): w.search.group_argmax().clone() for w in weights}
    module.prune_supernet()
    assert module.pruned
    groups = (set(range(4)), set(range(4, 8)))
    for cell in module.cells():
        expected = best[id(cell.op_weights)]
        for e, edge in enumerate(cell.edges):
            assert len(edge.ops) == 2
            kept = set(edge.kept)
            assert all(len(kept & g) == 1 for g in groups)  # one non-parametric, one parametric
            assert kept == set(expected[e].tolist())  # ... each its group's argmax
        w = cell.edge_op_weights().detach()
        assert ((w > 0).sum(-1) == 2).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(len(cell.edges)))
    out = net(torch.randn(2, 1, 8, 8))  # the pruned supernet still runs
    assert out.shape == (2, 10)


def test_near_hard_choice_follows_the_temperature() -> None:
    graph = CellGraph(2)
    w = SurvivorWeights(graph, DARTS_OPS, GroupedSoftmaxWeights(graph, DARTS_OPS, init_scale=1.0))
    kept = w.select()
    with torch.no_grad():
        w.alpha_choice.copy_(torch.tensor([[0.01, 0.0]]).expand(graph.num_edges, 2))
    w.temperature = 10.0  # softmax(0.01 / 0.01): soft
    soft = w().detach().gather(1, kept)
    assert soft[0, 0] == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item(), rel=1e-5)
    w.temperature = 0.02  # softmax(0.01 / 2e-5): hard
    hard = w().detach().gather(1, kept)
    assert hard[0, 0] == pytest.approx(1.0) and hard[0, 1] == pytest.approx(0.0, abs=1e-6)


def test_method1_top1_never_keeps_none() -> None:
    graph = CellGraph(3)
    from nni_decouple.search.weights import SoftmaxWeights

    search = SoftmaxWeights(graph, DARTS_OPS)
    with torch.no_grad():
        search.alpha.zero_()
        search.alpha[:, 0] = 10.0  # none is by far the strongest everywhere
        search.alpha[:, 5] = 1.0  # then sep_conv_5x5
    w = SurvivorWeights(graph, DARTS_OPS, search, keep=1)
    assert w.select().flatten().tolist() == [5] * graph.num_edges
    assert ((w().detach() == 1.0).sum(-1) == 1).all()  # one survivor: weight 1


def test_selection_survives_a_state_dict_round_trip() -> None:
    net, module = supernet()
    module.prune_supernet()
    state = net.state_dict()
    fresh, fresh_module = supernet()
    fresh.load_state_dict(state)
    assert fresh_module.pruned
    a = next(m for m in net.modules() if isinstance(m, DecoupledCell))
    b = next(m for m in fresh.modules() if isinstance(m, DecoupledCell))
    assert [e.kept for e in a.edges] == [e.kept for e in b.edges]
