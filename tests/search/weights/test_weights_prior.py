"""Attention to important ops as a fixed log-prior on DARTS' softmax."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.search.graph import CellGraph
from nni_decouple.search.weights import WEIGHTS
from nni_decouple.search.weights.prior import PriorSoftmaxWeights, parse_attention
from nni_decouple.spaces.cell import CellSpec

OPS = ("max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3")


def test_parse_attention() -> None:
    assert parse_attention(None) == {} and parse_attention("none") == {}
    assert parse_attention("sep") == {"sep_conv_3x3": 1.0, "sep_conv_5x5": 0.5}
    assert parse_attention("sep_conv_3x3=2, skip_connect=-1") == {"sep_conv_3x3": 2.0, "skip_connect": -1.0}
    with pytest.raises(ConfigError, match="unknown op"):
        parse_attention("sep_conv_9x9=1")
    with pytest.raises(ConfigError, match="op=bias"):
        parse_attention("sep_conv_3x3")


def test_prior_shifts_the_softmax_and_ignores_ops_outside_the_space() -> None:
    graph = CellGraph(2)
    weights = PriorSoftmaxWeights(graph, OPS, prior={"sep_conv_3x3": 1.0, "sep_conv_5x5": 0.5})
    with torch.no_grad():
        weights.alpha.zero_()
    w = weights()
    assert w.shape == (graph.num_edges, len(OPS))
    expected = torch.softmax(torch.tensor([0.0, 0.0, 1.0, 0.0]), dim=0)
    assert torch.allclose(w, expected.expand_as(w))
    assert [p for p in weights.arch_parameters()] == [weights.alpha]  # the prior is not learned


def test_registered_factory() -> None:
    spec = CellSpec(OPS, 4, False, False, 2, 0)
    weights = WEIGHTS["softmax_prior"](CellGraph(2), spec, "normal", {}, prior={"skip_connect": -2.0})
    assert weights.prior.tolist() == [0.0, -2.0, 0.0, 0.0]
