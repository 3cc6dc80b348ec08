"""The edges' fast path computes the same sum and gradients as their plain forward (docs/performance.md)."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.models.ops import DARTS_OPS
from nni_decouple.search.edges import MixedEdge
from nni_decouple.search.edges.nonzero import NonZeroMixedEdge
from nni_decouple.search.edges.partial import PartialChannelEdge
from nni_decouple.spaces.cell import CellSpec

SPEC = CellSpec(DARTS_OPS, 8, True, False, 2, 0)  # a reduction cell: sources 0, 1 stride 2, node 2 stride 1


def _edges(kind: str, source: int, n: int) -> list[torch.nn.Module]:
    make = {"mixed": lambda: MixedEdge(SPEC, source), "nonzero": lambda: NonZeroMixedEdge(SPEC, source),
            "partial": lambda: PartialChannelEdge(SPEC, source, k=2)}[kind]
    return [make() for _ in range(n)]


def _run(edges, x, w, fast: bool, live=None, shared=None):
    xi = x.clone().requires_grad_()
    wi = w.clone().requires_grad_(live is None)
    outs = [e.fast_forward(xi, wi[i].unbind(), live, shared, 0) if fast else e(xi, wi[i]) for i, e in enumerate(edges)]
    outs = [torch.zeros(()) if y is None else y for y in outs]
    sum(y.pow(2).sum() for y in outs).backward()
    params = [p.grad for e in edges for p in e.parameters()]
    return [y.detach() for y in outs], xi.grad, wi.grad, params


@pytest.mark.parametrize("kind", ["mixed", "nonzero", "partial"])
@pytest.mark.parametrize("source", [0, 2])
def test_fast_forward_is_the_same_sum_with_shared_pools(kind: str, source: int) -> None:
    """Three edges reading one node, their pools shared: same outputs, input, weight and op gradients."""
    torch.manual_seed(0)
    edges = _edges(kind, source, 3)
    x = torch.randn(2, 8, 9, 9)  # odd size: the strided ops' ceil
    w = torch.softmax(torch.randn(3, len(DARTS_OPS)), -1)
    shared: dict = {}
    plain = _run(edges, x, w, fast=False)
    fast = _run(edges, x, w, fast=True, shared=shared)
    for a, b in zip(plain[0], fast[0], strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(plain[1], fast[1])
    torch.testing.assert_close(plain[2], fast[2])
    for a, b in zip(plain[3], fast[3], strict=True):
        torch.testing.assert_close(a, b)
    pools = [key for key in shared if "Pool" in str(key[1])]
    assert len(pools) == 2 + (kind == "partial" and source == 0)  # max, avg (+ the bypass), once for 3 edges


def test_fixed_zero_weights_run_no_op() -> None:
    """A fixed (no-gradient) zero weight adds an exact zero: its op is not run, and no op at all gives None."""
    edge = MixedEdge(SPEC, 2)
    calls = []
    for op in edge.ops:
        op.register_forward_hook(lambda m, i, o: calls.append(type(m).__name__))
    x = torch.randn(2, 8, 5, 5)
    w = torch.zeros(len(DARTS_OPS))
    w[4] = 0.5  # sep_conv_3x3 alone
    live = (w != 0).tolist()
    fast = edge.fast_forward(x, w.unbind(), live, None, 0)
    assert calls == ["SepConv"]  # the plain forward runs all 8
    torch.testing.assert_close(fast, edge(x, w))
    assert edge.fast_forward(x, torch.zeros(len(DARTS_OPS)).unbind(), [False] * len(DARTS_OPS), None, 0) is None


def test_partial_edge_without_ops_still_passes_its_bypass() -> None:
    edge = PartialChannelEdge(SPEC, 0, k=2)
    x = torch.randn(2, 8, 6, 6)
    w = torch.zeros(len(DARTS_OPS))
    fast = edge.fast_forward(x, w.unbind(), [False] * len(DARTS_OPS), {}, 0)
    torch.testing.assert_close(fast, edge(x, w))
    assert fast.shape == (2, 8, 3, 3) and fast.abs().sum() > 0
