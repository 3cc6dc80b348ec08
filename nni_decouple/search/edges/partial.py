"""Edge factory "partial channels": PC-DARTS' partial channel connections (Xu et al., ICLR 2020).

Each edge sends only ``1/K`` of its input channels through the candidate ops, built at ``C/K``
channels, and bypasses the rest:

    y = shuffle(cat(sum_k w[k] * op_k(x[:, :C/K]), bypass(x[:, C/K:])), groups=K)

where ``bypass`` is the identity, or a 2x2 max pool (stride 2) on an edge that downsamples, and
``shuffle`` is ShuffleNet's channel shuffle, so that the next edge sees a different slice of
channels. The output has the full ``C`` channels and the op outputs' resolution, as a
:class:`~nni_decouple.search.edges.MixedEdge` would: memory and compute of the ops drop by about
K, which lets a bigger batch or a deeper supernet (DNAS' global search) fit.

An edge weight that weighs a *connection* (PC-DARTS' edge normalisation, DNAS' connection factor
``softmax(beta[k])[i]``) multiplies the whole output ``y``, bypassed channels included, as
PC-DARTS' edge weight does: the cell applies it (``OpWeights.split``, the topology's edge weights),
so that a connection weighted 0 sends nothing. The ``weights`` an edge receives weigh only its ops.

PC-DARTS' other half, edge normalisation, is a topology (``edge_norm``, :mod:`..topology.edge_norm`).

The edge also carries P-DARTS' skip-connection drop: with ``skip_drop = p > 0`` the output of a
stride-1 ``skip_connect`` (an identity) goes through dropout with rate ``p`` while training (DNAS
searches with ``p = 0.2``). Stride-2 skips (``FactorizedReduce``) are convolutions and are not
dropped, as in P-DARTS. ``K = 1`` gives the plain mixed edge (plus skip drop): no split, no shuffle.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import partial

import torch
from torch import nn

from ...errors import ConfigError
from ...models.ops import Identity
from ...spaces.cell import CellSpec
from . import EdgeFactory, MixedEdge, shared_op, weighted_sum


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's shuffle: view channels as [groups, C/groups], transpose, flatten."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class PartialChannelEdge(MixedEdge):
    """All candidate ops of one edge, on ``1/k`` of the channels (see the module docstring).

    Supernets with these edges stay in the default memory format (``channels_last_safe``): with
    channels-last, a tiny DNAS search (4 channels, K=4: one-channel slices) aborted in torch 2.14's
    CPU backward with heap corruption. The fault was later reproduced with a strided 1x1
    convolution of at most 4 input channels alone (DARTS' stride-2 skip connection on a 1/K slice),
    which :func:`~nni_decouple.runner.callbacks.channels_last_refusal` now catches in any supernet;
    the flag stays until partial-channel supernets are checked in channels-last at larger sizes.

    Args:
        spec: the cell's :class:`CellSpec` (the edge's input has ``spec.channels`` channels).
        source: the edge's source state (0 and 1 are the cell inputs, strided in reduction cells).
        k: the channel proportion K (PC-DARTS: 4); ``spec.channels`` must be divisible by it.
        skip_drop: dropout rate on stride-1 skip connections during training (0: off).
    """

    #: Read by :class:`~nni_decouple.runner.callbacks.MemoryFormat` (class docstring).
    channels_last_safe = False

    def __init__(self, spec: CellSpec, source: int, k: int = 4, skip_drop: float = 0.0) -> None:
        nn.Module.__init__(self)  # MixedEdge would build the ops at full width
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"the partial-channel proportion K must be an integer >= 1, got {k!r}")
        if spec.channels % k:
            raise ConfigError(
                f"partial channels: K={k} does not divide the {spec.channels} channels of cell {spec.layer}; "
                f"choose --channels so that every cell's width (C, 2C, 4C) is a multiple of K, or another K")
        if not 0.0 <= skip_drop < 1.0:
            raise ConfigError(f"skip_drop must be in [0, 1), got {skip_drop}")
        self.k, self.skip_drop = k, float(skip_drop)
        self.channels = spec.channels // k
        try:
            self.ops = nn.ModuleList(spec.make_op(name, source, channels=self.channels) for name in spec.op_names)
        except ValueError as e:  # e.g. FactorizedReduce on an odd number of channels
            raise ConfigError(
                f"partial channels: cannot build the ops of cell {spec.layer} at {self.channels} channels "
                f"({spec.channels} / K={k}): {e}; choose a larger --channels or a smaller K") from None
        self.kept: list[int] = list(range(len(spec.op_names)))
        self.stride = spec.stride(source)
        downsample = self.stride > 1
        # ceil_mode matches the strided ops (padding 1) on odd sizes; on even sizes it is PC-DARTS' pool.
        self.bypass = nn.MaxPool2d(2, 2, ceil_mode=True) if downsample and k > 1 else nn.Identity()

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        part = x[:, : self.channels] if self.k > 1 else x
        out = None
        for index, op in zip(self.kept, self.ops, strict=True):
            y = op(part)
            if self.skip_drop > 0 and isinstance(op, Identity):
                y = nn.functional.dropout(y, self.skip_drop, self.training)
            y = weights[index] * y
            out = y if out is None else out + y
        if self.k == 1:
            return out  # type: ignore[return-value]
        rest = self.bypass(x[:, self.channels:])
        return channel_shuffle(torch.cat([out, rest], dim=1), self.k)  # type: ignore[list-item]

    def fast_forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor], live: Sequence[bool] | None,
                     shared: dict[Hashable, torch.Tensor] | None, key: Hashable) -> torch.Tensor | None:
        """:meth:`forward` on the cell's fast path (:meth:`MixedEdge.fast_forward`): pools on the
        channel slice and the bypass are shared by the edges that read the same node and slice."""
        part = x[:, : self.channels] if self.k > 1 else x

        def term(index: int, op: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
            y = shared_op(op, part, shared, (key, self.channels))
            if self.skip_drop > 0 and isinstance(op, Identity):
                y = nn.functional.dropout(y, self.skip_drop, self.training)
            return weights[index], y

        out = weighted_sum(term(index, op) for index, op in self.live_ops(weights, live))
        if self.k == 1:
            return out
        if out is None:  # no op contributes, but the bypassed channels still pass
            out = part[:, :, :: self.stride, :: self.stride].mul(0.0)
        rest = shared_op(self.bypass, x[:, self.channels:], shared, (key, "bypass", self.channels))
        return channel_shuffle(torch.cat([out, rest], dim=1), self.k)

    def extra_repr(self) -> str:
        return f"k={self.k}, channels={self.channels}, skip_drop={self.skip_drop}"


def partial_channel_edges(k: int = 4, skip_drop: float = 0.0) -> EdgeFactory:
    """An ``edge_factory`` for :class:`~nni_decouple.strategies.base.DecoupledStrategy`."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"the partial-channel proportion K must be an integer >= 1, got {k!r}")
    if not 0.0 <= skip_drop < 1.0:
        raise ConfigError(f"skip_drop must be in [0, 1), got {skip_drop}")
    return partial(PartialChannelEdge, k=k, skip_drop=skip_drop)
