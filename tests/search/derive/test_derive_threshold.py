"""FairDARTS' threshold derivation on DNAS' op factor."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.search.cell import DecoupledCell
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.dnas import DNAS

OPS = ["max_pool_3x3", "skip_connect", "sep_conv_3x3"]


def first_cell(**options) -> DecoupledCell:
    space = CellSpace(ops=OPS, channels=4, layers=3, nodes=3, sharing="layer", in_chans=1)
    net = DNAS(partial_k=1, derive="threshold", **options).mutate_model(space)
    return next(m for m in net.modules() if isinstance(m, DecoupledCell))


def test_threshold_applies_to_the_op_factor_and_drops_dead_nodes() -> None:
    cell = first_cell()
    w = cell.op_weights
    graph = cell.graph
    with torch.no_grad():
        w.alpha.fill_(-8.0)  # every op gate ~0 ...
        w.gamma.fill_(8.0)
        w.alpha[graph.index(0, 2), 2] = 8.0  # ... except sep_conv on 0->2 and skip on 2->4
        w.alpha[graph.index(2, 4), 1] = 8.0
        w.alpha[graph.index(1, 3), 0] = 8.0
        w.gamma[0] = -8.0  # max_pool is off in this layer, so 1->3 fails and node 3 stays empty
    genotype = cell.derive()
    assert [[(e.op, e.source) for e in node] for node in genotype.nodes] == [
        [("sep_conv_3x3", 0)], [], [("skip_connect", 2)]]
    assert genotype.concat == (2, 4)
    # psi itself is ~1/C times smaller (softmax over connections): thresholding psi would keep nothing
    assert float(w().detach().max()) < 0.85


def test_no_confident_op_keeps_one_edge_and_warns() -> None:
    cell = first_cell()
    with pytest.warns(UserWarning, match="threshold"):
        genotype = cell.derive()  # freshly initialised: every gate is ~0.25
    assert sum(len(node) for node in genotype.nodes) == 1 and genotype.nodes[0]
