"""PC-DARTS partial channel edges: C/K channels through the ops, shapes, bypass, shuffle, skip drop."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.models.ops import Identity
from nni_decouple.search.edges import MixedEdge
from nni_decouple.search.edges.partial import PartialChannelEdge, channel_shuffle, partial_channel_edges
from nni_decouple.spaces.cell import CellSpec

OPS = ("max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3")


def spec(channels: int = 8, reduction: bool = False, ops: tuple[str, ...] = OPS) -> CellSpec:
    return CellSpec(ops, channels, reduction, False, 2, 0)


def unshuffle(y: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = y.shape
    return y.view(n, c // groups, groups, h, w).transpose(1, 2).reshape(n, c, h, w)


@pytest.mark.parametrize("reduction", [False, True])
@pytest.mark.parametrize("k", [2, 4])
def test_ops_see_exactly_c_over_k_channels_and_output_shape_is_unchanged(k: int, reduction: bool) -> None:
    channels = 8
    edge = PartialChannelEdge(spec(channels, reduction), source=0, k=k)
    seen: list[int] = []
    for op in edge.ops:
        op.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[1]))
    x = torch.randn(2, channels, 8, 8)
    y = edge(x, torch.rand(len(OPS)))
    assert seen == [channels // k] * len(OPS)
    size = 4 if reduction else 8
    assert y.shape == (2, channels, size, size)
    # Convolutions are built at C/K channels too.
    assert edge.ops[2][0][1].in_channels == channels // k


def test_bypassed_channels_pass_through_and_are_shuffled() -> None:
    k, channels = 4, 8
    edge = PartialChannelEdge(spec(channels, ops=("skip_connect", "max_pool_3x3")), source=2, k=k)
    x = torch.randn(2, channels, 6, 6)
    y = unshuffle(edge(x, torch.tensor([1.0, 0.0])), k)
    assert torch.allclose(y[:, channels // k:], x[:, channels // k:])  # the bypass is untouched
    assert torch.allclose(y[:, : channels // k], x[:, : channels // k])  # weighted skip of the sampled part
    assert not torch.allclose(channel_shuffle(y, k), y)  # the shuffle does move channels


def test_reduction_bypass_is_max_pooled_also_on_odd_sizes() -> None:
    edge = PartialChannelEdge(spec(8, reduction=True), source=1, k=4)
    x = torch.randn(1, 8, 7, 7)
    y = unshuffle(edge(x, torch.zeros(len(OPS))), 4)
    assert y.shape == (1, 8, 4, 4)
    assert torch.allclose(y[:, 2:], torch.nn.functional.max_pool2d(x[:, 2:], 2, 2, ceil_mode=True))


def test_k_one_is_the_mixed_edge() -> None:
    s = spec(4)
    torch.manual_seed(1)
    full = MixedEdge(s, 0)
    torch.manual_seed(1)
    partial = PartialChannelEdge(s, 0, k=1)
    partial.load_state_dict(full.state_dict())
    x, w = torch.randn(2, 4, 6, 6), torch.rand(len(OPS))
    assert torch.allclose(partial(x, w), full(x, w))


def test_skip_drop_acts_on_identities_in_training_only() -> None:
    edge = PartialChannelEdge(spec(8, ops=("skip_connect",)), source=2, k=1, skip_drop=0.5)
    assert isinstance(edge.ops[0], Identity)
    x = torch.ones(4, 8, 8, 8)
    dropped = edge.train()(x, torch.ones(1))
    zero_share = (dropped == 0).float().mean().item()
    assert 0.35 < zero_share < 0.65
    assert torch.allclose(dropped[dropped != 0], torch.full_like(dropped[dropped != 0], 2.0))  # scaled by 1/(1-p)
    assert torch.equal(edge.eval()(x, torch.ones(1)), x)


def test_prune_keeps_weight_indices() -> None:
    edge = PartialChannelEdge(spec(8), source=2, k=4)
    edge.prune([1, 3])
    assert edge.kept == [1, 3] and len(edge.ops) == 2
    y = edge(torch.randn(1, 8, 4, 4), torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert y.shape == (1, 8, 4, 4)


def test_bad_proportions_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="does not divide"):
        PartialChannelEdge(spec(6), source=0, k=4)
    with pytest.raises(ConfigError, match="larger --channels"):
        PartialChannelEdge(spec(4, reduction=True), source=0, k=4)  # FactorizedReduce on 1 channel
    with pytest.raises(ConfigError, match=">= 1"):
        partial_channel_edges(0)
    with pytest.raises(ConfigError, match="skip_drop"):
        partial_channel_edges(4, skip_drop=1.0)
