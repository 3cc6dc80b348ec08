"""Op weights "ddarts": one alpha per cell from scratch; handcrafted starts with shared alphas."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.models.handcrafted import get_handcrafted
from nni_decouple.search.graph import CellGraph
from nni_decouple.search.weights.ddarts import alpha_from_cell
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.ddarts import DDARTS


def edge_set(cell) -> set[tuple[int, str, int]]:
    return {(target, e.op, e.source) for target, e in cell.edges()}


def r18_space() -> CellSpace:
    return CellSpace(ops="s_o", channels=4, layers=4, nodes=4, sharing="layer", num_classes=2, reductions=(1, 2, 3))


def test_scratch_gives_every_cell_its_own_zero_alpha() -> None:
    space = CellSpace(ops="darts_no_none", channels=4, layers=4, nodes=2, sharing="layer", num_classes=2)
    net = DDARTS().mutate_model(space)
    modules = [c.op_weights for c in net.cells]
    assert len({id(m) for m in modules}) == 4
    assert all(float(m.alpha.detach().abs().max()) == 0.0 and m().shape == (5, 7) for m in modules)


def test_resnet18_start_encodes_its_ops_at_ten_and_shares_one_alpha() -> None:
    net = DDARTS(start="resnet18").mutate_model(r18_space())
    modules = {id(c.op_weights): c.op_weights for c in net.cells}
    assert len(modules) == 1  # the four identical stages: one alpha, one optimizer
    alpha = next(iter(modules.values())).alpha.detach()
    graph, ops = CellGraph(4), net.cells[0].spec.op_names
    high = {(graph.edges[e], ops[k]) for e, k in (alpha == 10.0).nonzero().tolist()}
    assert high == {((1, 2), "simple_conv_3x3"), ((2, 3), "simple_conv_3x3"), ((1, 3), "skip_connect"),
                    ((3, 4), "simple_conv_3x3"), ((4, 5), "simple_conv_3x3"), ((3, 5), "skip_connect")}
    assert int((alpha == 0.0).sum()) == alpha.numel() - 6
    # The supernet exports the ResNet-18 stage in every layer with the 0.85 threshold.
    stage = get_handcrafted("resnet18").genotype.layers[0]
    assert all(edge_set(c.derive()) == edge_set(stage) for c in net.cells)


def test_without_sharing_every_cell_has_its_own_copy() -> None:
    net = DDARTS(start="resnet18", share_identical=False).mutate_model(r18_space())
    modules = [c.op_weights for c in net.cells]
    assert len({id(m) for m in modules}) == 4
    assert all(torch.equal(m.alpha, modules[0].alpha) for m in modules)


def test_wrong_layouts_are_config_errors() -> None:
    space = CellSpace(ops="s_o", channels=4, layers=5, nodes=4, sharing="layer", num_classes=2)
    with pytest.raises(ConfigError, match="layers 5"):
        DDARTS(start="resnet18").mutate_model(space)
    space = CellSpace(ops="darts_no_none", channels=4, layers=4, nodes=4, sharing="layer", num_classes=2,
                      reductions=(1, 2, 3))
    with pytest.raises(ConfigError, match="s_o"):
        DDARTS(start="resnet18").mutate_model(space)
    with pytest.raises(ConfigError, match="--nodes 6"):
        alpha_from_cell(get_handcrafted("resnet50").genotype.layers[2], CellGraph(4), ("bottleneck_1x3x1",
                                                                                       "skip_connect"))
