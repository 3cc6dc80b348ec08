"""Stretchable derivation: argmax codes, dropped nodes, and the variable-depth cells it yields build."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import Genotype
from nni_decouple.models.network import DartsNetwork
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.search.derive import DERIVES
from nni_decouple.search.derive.stretchable import derive_stretchable
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.stretchable import StretchableCells

OPS = "skip_connect,avg_pool_3x3,sep_conv_3x3"


def _cells(strategy: StretchableCells, nodes: int = 3) -> dict[str, DecoupledCell]:
    space = CellSpace(ops=OPS, channels=4, layers=3, nodes=nodes, num_classes=3, in_chans=1)
    supernet = strategy.mutate_model(space)
    return {cell.label: cell for cell in supernet.modules() if isinstance(cell, DecoupledCell)}


def test_registered():
    assert DERIVES["stretchable"] is derive_stretchable


def test_argmax_codes_drop_nodes_without_inputs_and_their_edges():
    cells = _cells(StretchableCells(optimizer="darts"))
    normal = cells["normal"]
    # node 3 gets no input; its own code would feed node 4, but a dropped node has no value
    normal.topology.set_codes({0: (2,), 1: (2, 4), 2: (4,), 3: (4,), 4: ()})
    with torch.no_grad():
        normal.op_weights.alpha.zero_()
        normal.op_weights.alpha[:, 2] = 1.0  # sep_conv_3x3 everywhere
    cell = normal.derive()
    assert [[(e.op, e.source) for e in node] for node in cell.nodes] == [
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], [], [("sep_conv_3x3", 1), ("sep_conv_3x3", 2)]]
    assert cell.concat == (2, 4)
    assert float(normal.topology.regularizer().detach()) > 0  # r(beta) flags this topology


def test_cascade_removes_a_chain_cut_off_from_the_inputs():
    cells = _cells(StretchableCells(optimizer="darts"))
    reduce = cells["reduce"]
    reduce.topology.set_codes({0: (3,), 1: (3,), 2: (3, 4), 3: (), 4: ()})  # node 2 unfed, so 2->4 goes too
    cell = reduce.derive()
    assert [len(node) for node in cell.nodes] == [0, 2, 0]
    assert cell.concat == (3,)


def test_derived_cells_with_removed_nodes_build_and_run():
    strategy = StretchableCells(optimizer="darts")
    cells = _cells(strategy, nodes=4)
    cells["normal"].topology.set_codes({0: (2,), 1: (2, 3), 2: (3,), 3: (5,), 4: (5,)})  # node 4 unfed
    cells["reduce"].topology.set_codes({0: (4,), 1: (4,), 2: (), 3: (), 4: (5,)})  # nodes 2, 3 unfed
    normal, reduce = cells["normal"].derive(), cells["reduce"].derive()
    assert normal.concat == (2, 3, 5) and reduce.concat == (4, 5)
    genotype = Genotype(normal=normal, reduce=reduce, meta={"eval_layers": 3}).validate()
    net = DartsNetwork(genotype, channels=4, layers=genotype.meta["eval_layers"], num_classes=3, in_chans=1)
    out = net(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.sum().backward()
    # the concatenation width follows the kept nodes: 3 and 2 nodes instead of 4
    assert [c.multiplier for c in net.cells] == [3, 2, 2]  # layers 1 and 2 reduce


def test_input_view_keeps_each_nodes_argmax_combination():
    cells = _cells(StretchableCells(optimizer="darts", topology="input", edges="two"))
    normal = cells["normal"]
    with torch.no_grad():
        for beta in normal.topology.beta:
            beta.zero_()
            beta[-1] = 1.0  # the last pair: the two latest predecessors
    cell = normal.derive()
    assert [sorted(e.source for e in node) for node in cell.nodes] == [[0, 1], [1, 2], [2, 3]]


def test_needs_a_combination_topology():
    from nni_decouple.strategies.base import DecoupledStrategy

    cells = _cells(DecoupledStrategy(weights="softmax", topology="none", derive="stretchable"))
    with pytest.raises(ConfigError, match="stretchable"):
        cells["normal"].derive()
