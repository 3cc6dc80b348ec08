"""Depthwise convolution with a faster CPU weight gradient for dilated kernels (the supernet's fast path).

On the CPU (one thread, 16-64 channels, batch 32, channels-last), torch 2.14's weight gradient of a
*dilated* depthwise convolution takes 4-14 ms where the same sum computed as one grouped convolution
takes 1-3 ms (each alone, ``aten.convolution_backward`` against the grouped convolution with its
copies); a whole forward + backward of such a convolution: ``python benchmarks/fast_path.py``'s
``dilated depthwise`` rows (docs/performance.md)::

    dW[c, 0, i, j] = sum_{n,h,w} dY[n, c, h, w] * X_pad[n, c, s*h + d*i, s*w + d*j]

i.e. the padded input convolved with ``dY`` as the kernel, one group per sample and channel, the
forward's stride ``s`` as dilation and its dilation ``d`` as stride, summed over the batch.

:class:`DepthwiseConv2d` is an ``nn.Conv2d`` (same parameters, same state dict, same forward). Only
with ``fast_backward`` set (by the supernet's fast path, :class:`~nni_decouple.search.cell.DecoupledCell`),
on a dilated kernel, on the CPU and outside autocast does its backward take that route: torch's own
convolution with the weight detached gives the input gradient, and a second autograd node the weight
gradient, so a backward that needs no weight gradient (the architecture step's, which stops at the
architecture parameters) never runs it. Exported networks leave the flag off: they script, trace and
train as a plain ``nn.Conv2d``.
"""
# No ``from __future__ import annotations``: TorchScript reads this module's annotations (timm's suite scripts
# the exported networks).
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


def depthwise_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: tuple[int, int],
                          stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """Weight gradient ``[C, 1, kh, kw]`` of a depthwise convolution (``groups == C``, no multiplier).

    ``x``: the forward's input ``[N, C, H, W]``; ``grad_out``: ``[N, C, Ho, Wo]``. One grouped
    convolution over ``N * C`` groups (module docstring)."""
    n, c = x.shape[:2]
    ho, wo = grad_out.shape[-2:]
    xp = F.pad(x, (padding[1], padding[1], padding[0], padding[0])).contiguous()
    kernel = grad_out.contiguous().reshape(n * c, 1, ho, wo)
    out = F.conv2d(xp.reshape(1, n * c, *xp.shape[-2:]), kernel, None, dilation, 0, stride, n * c)
    return out[..., :kernel_size[0], :kernel_size[1]].reshape(n, c, *kernel_size).sum(0).unsqueeze(1)


class _WeightGrad(torch.autograd.Function):
    """A zero of the output's shape whose backward gives the depthwise weight gradient
    (:func:`depthwise_weight_grad`); added to the output of the convolution with the detached weight."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, out_shape: torch.Size, stride: tuple[int, int],
                padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.conf = (tuple(weight.shape[-2:]), stride, padding, dilation)
        return weight.new_zeros(()).expand(out_shape)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        kernel_size, stride, padding, dilation = ctx.conf
        return None, depthwise_weight_grad(x, grad_out, kernel_size, stride, padding, dilation), None, None, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(c, c, k, groups=c)``; with :attr:`fast_backward`, the faster CPU backward of dilated
    kernels (module docstring). Input and output ``[N, C, H, W]``; gradients equal to ``nn.Conv2d``'s
    up to float rounding (``tests/models/test_depthwise.py``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Set on the supernet's fast path; off in exported networks.
        self.fast_backward = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and self.fast_backward and self._takes_fast_backward(x):
            return self._fast_forward(x)
        return self._conv_forward(x, self.weight, self.bias)

    @torch.jit.unused
    def _takes_fast_backward(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and self.dilation != (1, 1) and self.bias is None
                and self.groups == self.in_channels == self.out_channels and self.padding_mode == "zeros"
                and isinstance(self.padding, tuple) and torch.is_grad_enabled()
                and not torch.is_autocast_enabled(x.device.type))

    @torch.jit.unused
    def _fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        conf = (self.stride, self.padding, self.dilation)
        y = F.conv2d(x, self.weight.detach(), None, *conf, self.groups)  # torch's input gradient only
        if not self.weight.requires_grad:
            return y
        return y.add_(_WeightGrad.apply(x.detach(), self.weight, y.shape, *conf))  # in place: no new tensor
