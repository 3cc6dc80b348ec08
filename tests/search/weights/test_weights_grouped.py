"""DOTS' grouped op weights: one softmax per op group."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.models.ops import DARTS_OPS
from nni_decouple.search.graph import CellGraph
from nni_decouple.search.weights.grouped import GroupedSoftmaxWeights, op_groups


def test_darts_ops_split_into_non_parametric_and_parametric_groups() -> None:
    assert op_groups(DARTS_OPS) == ((0, 1, 2, 3), (4, 5, 6, 7))
    assert op_groups(["sep_conv_3x3", "skip_connect", "max_pool_3x3"]) == ((1, 2), (0,))
    assert op_groups(["sep_conv_3x3", "dil_conv_3x3"]) == ((0, 1),)  # empty group dropped
    assert op_groups(DARTS_OPS, "none") == (tuple(range(8)),)
    assert op_groups(DARTS_OPS[:3], [["none"], ["max_pool_3x3", "avg_pool_3x3"]]) == ((0,), (1, 2))
    with pytest.raises(ConfigError, match="exactly once"):
        op_groups(DARTS_OPS[:3], [["none"], ["max_pool_3x3"]])


def test_each_group_is_its_own_softmax() -> None:
    graph = CellGraph(4)
    weights = GroupedSoftmaxWeights(graph, DARTS_OPS, init_scale=1.0)
    w = weights()
    assert w.shape == (14, 8)
    torch.testing.assert_close(w[:, :4].sum(-1), torch.ones(14))
    torch.testing.assert_close(w[:, 4:].sum(-1), torch.ones(14))
    alpha = weights.alpha.detach()
    torch.testing.assert_close(w[:, 4:].detach(), torch.softmax(alpha[:, 4:], -1))
    # interleaved groups come back in the op order
    mixed = ("sep_conv_3x3", "none", "dil_conv_3x3", "skip_connect")
    weights = GroupedSoftmaxWeights(CellGraph(2), mixed, init_scale=1.0, temperature=0.5)
    a = weights.alpha.detach()
    w = weights().detach()
    torch.testing.assert_close(w[:, [0, 2]], torch.softmax(a[:, [0, 2]] / 0.5, -1))
    torch.testing.assert_close(w[:, [1, 3]], torch.softmax(a[:, [1, 3]] / 0.5, -1))
    assert weights.group_argmax().shape == (5, 2)
    weights().pow(2).sum().backward()
    assert weights.alpha.grad is not None and bool(weights.alpha.grad.abs().sum() > 0)
