"""D-DARTS' sparse and edge derivations on hand-set sigmoid weights."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.models.genotype import CellGenotype
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.ddarts import DDARTS

# darts_no_none: max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5
# Edges of a 3-node cell: node 2 <- 0, 1 (0, 1); node 3 <- 0, 1, 2 (2, 3, 4); node 4 <- 0, 1, 2, 3 (5..8).


def cell(derive: str, values: dict[tuple[int, str], float]) -> DecoupledCell:
    space = CellSpace(ops="darts_no_none", channels=4, layers=3, nodes=3, sharing="layer", num_classes=2)
    net = DDARTS(derive=derive).mutate_model(space)
    first = net.cells[0]
    names = first.spec.op_names
    with torch.no_grad():
        first.op_weights.alpha.fill_(-5.0)  # sigmoid 0.007: off
        for (edge, op), a in values.items():
            first.op_weights.alpha[edge, names.index(op)] = a
    return first


WEIGHTS = {
    (0, "sep_conv_3x3"): 3.0,   # 0.953
    (0, "skip_connect"): 2.5,   # 0.924
    (1, "max_pool_3x3"): 1.0,   # 0.731: below 0.85
    (2, "sep_conv_5x5"): 2.0,   # 0.881, but third-strongest input of node 3
    (3, "dil_conv_3x3"): 4.0,   # 0.982
    (4, "avg_pool_3x3"): 3.0,   # 0.953
    (8, "dil_conv_5x5"): 0.5,   # 0.622: node 4 gets nothing
}


def test_sparse_takes_top_two_inputs_then_the_threshold() -> None:
    got = cell("sparse", WEIGHTS).derive()
    assert got == CellGenotype.from_edges([[("sep_conv_3x3", 0)], [("dil_conv_3x3", 1), ("avg_pool_3x3", 2)], []])
    assert got.concat == (2, 3)  # node 4 has no input: dropped from the output


def test_edge_takes_top_two_ops_per_edge_above_the_threshold() -> None:
    got = cell("edge", WEIGHTS).derive()
    assert got == CellGenotype.from_edges([
        [("skip_connect", 0), ("sep_conv_3x3", 0)],
        [("sep_conv_5x5", 0), ("dil_conv_3x3", 1), ("avg_pool_3x3", 2)],
        [],
    ])


@pytest.mark.parametrize("derive", ["sparse", "edge"])
def test_nodes_reading_dropped_nodes_are_dropped_too(derive: str) -> None:
    # Node 2 has nothing; node 3 reads only node 2; node 4 reads node 3 and input 0.
    got = cell(derive, {(4, "sep_conv_3x3"): 5.0, (8, "sep_conv_3x3"): 5.0, (5, "max_pool_3x3"): 5.0}).derive()
    assert got.nodes == ((), (), (got.nodes[2][0],))
    assert got.nodes[2][0].source == 0 and got.concat == (4,)
    got.validate()


def test_nothing_above_the_threshold_keeps_one_edge_and_warns() -> None:
    with pytest.warns(UserWarning, match="threshold"):
        got = cell("sparse", {(1, "dil_conv_5x5"): 0.2}).derive()
    assert got == CellGenotype.from_edges([[("dil_conv_5x5", 1)], [], []])
