"""What each idea of the fast path buys, measured side by side (docs/performance.md).

The case of the issue: the DARTS candidate ops (without ``none``) on four edges that read the same
node, 16 channels, batch 32, 32 x 32, one thread; forward of ``sum_e sum_k w[e, k] * op_k(x)`` and
backward. Variants:

- ``default``: the plain mixed edges in the default memory format;
- ``channels_last``: the same modules and input in channels-last;
- ``+ shared pools``: the pools computed once for the four edges (what the cell's fast path does);
- ``+ addcmul``: each weighted term added by one fused ``addcmul`` (also the fast path);
- ``grouped (default / channels_last)``: the four edges' separable and dilated convolutions batched
  into grouped convolutions (one depthwise conv with 4C outputs, one pointwise conv with groups=4);
- ``torch.compile (default / channels_last)``: the whole sum compiled by inductor (compile time apart);
- ``dilated depthwise``: forward + backward of one dilated depthwise convolution (``dil_conv_*``'s, at
  the reference setting's shapes, channels-last) with torch's weight gradient and with the grouped one
  of :class:`~nni_decouple.models.depthwise.DepthwiseConv2d` (the fast path).

    python benchmarks/fast_path.py [--reps 5] [--no-compile]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from nni_decouple.models.depthwise import DepthwiseConv2d
from nni_decouple.models.ops import DARTS_OPS_NO_NONE, create_op

EDGES, C, N, HW = 4, 16, 32, 32
CONVS = {"sep_conv_3x3": (3, 1, 1, True), "sep_conv_5x5": (5, 2, 1, True),
         "dil_conv_3x3": (3, 2, 2, False), "dil_conv_5x5": (5, 4, 2, False)}  # kernel, padding, dilation, separable


class Plain(nn.Module):
    def __init__(self, shared: bool, addcmul: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleList(create_op(o, C, 1, False) for o in DARTS_OPS_NO_NONE)
                                   for _ in range(EDGES))
        self.shared, self.addcmul = shared, addcmul

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        cache: dict[int, torch.Tensor] = {}
        total = None
        for e, ops in enumerate(self.edges):
            ws = w[e].unbind()
            out = None
            for k, op in enumerate(ops):
                if self.shared and isinstance(op, (nn.MaxPool2d, nn.AvgPool2d)):
                    y = cache[k] if k in cache else cache.setdefault(k, op(x))
                else:
                    y = op(x)
                if out is None:
                    out = ws[k] * y
                elif self.addcmul:
                    out = torch.addcmul(out, ws[k], y)
                else:
                    out = out + ws[k] * y
            total = out if total is None else total + out
        return total


class GroupedDilConv(nn.Module):
    """ReLU -> depthwise (C -> E*C outputs, groups C) -> pointwise (groups E) -> BN: E edges' DilConvs at once."""

    def __init__(self, c_in_per_edge: int, first: bool, kernel: int, padding: int, dilation: int) -> None:
        super().__init__()
        self.first = first
        c_dw_in = C if first else EDGES * C
        self.dw = nn.Conv2d(c_dw_in, EDGES * C, kernel, padding=padding, dilation=dilation, groups=c_dw_in, bias=False)
        self.pw = nn.Conv2d(EDGES * C, EDGES * C, 1, groups=EDGES, bias=False)
        self.bn = nn.BatchNorm2d(EDGES * C, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(torch.relu(x))
        if self.first:  # depthwise output is channel-major (c, e): make it edge-major (e, c) for the pointwise groups
            n, _, h, w = y.shape
            y = y.view(n, C, EDGES, h, w).transpose(1, 2).reshape(n, EDGES * C, h, w)
        return self.bn(self.pw(y))


class Grouped(nn.Module):
    """The convolutions of the four edges batched; pools and skip computed once (they are shared)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleDict()
        for name, (k, p, d, separable) in CONVS.items():
            blocks = [GroupedDilConv(C, True, k, p, d)]
            if separable:
                blocks.append(GroupedDilConv(C, False, k, p, 1))
            self.convs[name] = nn.Sequential(*blocks)
        self.max_pool = nn.MaxPool2d(3, 1, 1)
        self.avg_pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, _, h, wd = x.shape
        pooled = [self.max_pool(x), self.avg_pool(x), x]
        total = None
        for e in range(EDGES):
            for k, y in enumerate(pooled):
                total = w[e, k] * y if total is None else torch.addcmul(total, w[e, k], y)
        for k, conv in enumerate(self.convs.values(), start=3):
            y = conv(x).view(n, EDGES, C, h, wd)
            total = total + (w[:, k].view(1, EDGES, 1, 1, 1) * y).sum(1)
        return total


def timed(model: nn.Module, fmt: torch.memory_format, reps: int) -> float:
    model.to(memory_format=fmt)
    x = torch.randn(N, C, HW, HW).contiguous(memory_format=fmt).requires_grad_()
    w = torch.softmax(torch.randn(EDGES, len(DARTS_OPS_NO_NONE)), -1).requires_grad_()
    times = []
    for i in range(reps + 1):
        started = time.perf_counter()
        model(x, w).square().mean().backward()
        if i:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def dilated_depthwise(reps: int) -> None:
    """torch's backward of dilated depthwise kernels against DepthwiseConv2d's (module docstring)."""
    for c, size, k, stride in ((16, 28, 3, 1), (16, 28, 5, 1), (32, 14, 5, 1), (64, 7, 5, 1), (32, 28, 5, 2)):
        times = []
        for fast in (False, True):
            torch.manual_seed(0)
            conv = DepthwiseConv2d(c, c, k, stride, k - 1, 2, groups=c, bias=False)
            conv.fast_backward = fast
            x = torch.randn(N, c, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
            runs = []
            for i in range(reps + 1):
                started = time.perf_counter()
                conv(x).square().mean().backward()
                if i:
                    runs.append(time.perf_counter() - started)
            times.append(statistics.median(runs))
        name = f"dilated depthwise {k}x{k}, {c} ch, {size}x{size}, stride {stride}: torch / grouped"
        print(f"{name:55s} {times[0] * 1000:5.1f} / {times[1] * 1000:5.1f} ms  {times[1] / times[0]:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="timed calls per variant, after one warm-up (default 5)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows (slow to compile)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cl, default = torch.channels_last, torch.contiguous_format
    rows = [("default", Plain(False, False), default), ("channels_last", Plain(False, False), cl),
            ("channels_last + shared pools", Plain(True, False), cl),
            ("channels_last + shared pools + addcmul (fast path)", Plain(True, True), cl),
            ("default + shared pools + addcmul", Plain(True, True), default),
            ("grouped convs, default", Grouped(), default), ("grouped convs, channels_last", Grouped(), cl)]
    results = {}
    for name, model, fmt in rows:
        torch.manual_seed(0)
        results[name] = timed(model, fmt, args.reps)
        print(f"{name:55s} {results[name] * 1000:7.0f} ms  {results[name] / results['default']:.2f}x", flush=True)
    dilated_depthwise(args.reps)
    if not args.no_compile:
        for name, fmt in (("torch.compile, default", default), ("torch.compile, channels_last", cl)):
            torch.manual_seed(0)
            model = Plain(True, True).to(memory_format=fmt)
            compiled = torch.compile(model)
            started = time.perf_counter()
            seconds = timed(compiled, fmt, args.reps)
            total = time.perf_counter() - started
            print(f"{name:55s} {seconds * 1000:7.0f} ms  {seconds / results['default']:.2f}x "
                  f"(first call with compilation: {total - args.reps * seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
