"""DepthwiseConv2d's fast CPU backward against torch's own nn.Conv2d, by brute force over shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nni_decouple.models import depthwise
from nni_decouple.models.depthwise import DepthwiseConv2d
from nni_decouple.models.ops import create_op

CASES = [  # channels, size, kernel, stride, dilation (padding keeps the DARTS shape)
    (3, 9, 3, 1, 2), (4, 10, 5, 1, 2), (4, 9, 5, 2, 2), (2, 11, 3, 2, 2), (3, 8, 3, 1, 3), (2, 7, 3, 2, 1),
]


def pair(c: int, k: int, stride: int, dilation: int) -> tuple[DepthwiseConv2d, nn.Conv2d]:
    padding = dilation * (k - 1) // 2
    fast = DepthwiseConv2d(c, c, k, stride, padding, dilation, groups=c, bias=False).double()
    plain = nn.Conv2d(c, c, k, stride, padding, dilation, groups=c, bias=False).double()
    plain.load_state_dict(fast.state_dict())
    fast.fast_backward = True
    return fast, plain


@pytest.mark.parametrize("channels_last", [False, True], ids=["default", "channels_last"])
@pytest.mark.parametrize("c,size,k,stride,dilation", CASES)
def test_gradients_equal_torch_conv(c, size, k, stride, dilation, channels_last):
    torch.manual_seed(0)
    fast, plain = pair(c, k, stride, dilation)
    x = torch.randn(3, c, size, size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = fast(x1), plain(x2)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    g = torch.randn_like(y2)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-12, atol=1e-12)


def test_dilated_kernels_take_the_grouped_weight_gradient(monkeypatch):
    calls = []
    real = depthwise.depthwise_weight_grad
    monkeypatch.setattr(depthwise, "depthwise_weight_grad", lambda *a: calls.append(1) or real(*a))
    fast, _ = pair(4, 3, 1, 2)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    fast(x).sum().backward()
    assert calls == [1] and fast.weight.grad is not None
    undilated, _ = pair(4, 3, 1, 1)  # torch's own kernel is the faster one there
    undilated(x).sum().backward()
    assert calls == [1] and undilated.weight.grad is not None


def test_a_backward_that_needs_no_weight_gradient_computes_none(monkeypatch):
    """The architecture step's backward stops at the architecture parameters: the weight gradient is
    a separate autograd node, which that backward never runs."""
    calls = []
    monkeypatch.setattr(depthwise, "depthwise_weight_grad", lambda *a: calls.append(1))
    fast, plain = pair(4, 5, 1, 2)
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(fast(x).square().sum(), [x])
    (want,) = torch.autograd.grad(plain(x).square().sum(), [x])
    assert calls == [] and fast.weight.grad is None
    torch.testing.assert_close(gx, want, rtol=1e-12, atol=1e-12)


def test_off_by_default_and_a_plain_conv_to_torch():
    """Exported networks keep the flag off: the same state dict as nn.Conv2d, scriptable, traceable."""
    op = create_op("dil_conv_5x5", 4, 1, True)
    conv = op[1]
    assert isinstance(conv, DepthwiseConv2d) and not conv.fast_backward
    assert set(op.state_dict()) == {"1.weight", "2.weight", "3.weight", "3.bias", "3.running_mean",
                                    "3.running_var", "3.num_batches_tracked"}
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(torch.jit.script(conv)(x), conv(x))
    torch.testing.assert_close(torch.fx.symbolic_trace(conv)(x), conv(x))
    conv.fast_backward = True
    torch.testing.assert_close(torch.jit.script(conv)(x), conv(x))


def test_autocast_and_no_grad_take_torch_conv(monkeypatch):
    calls = []
    monkeypatch.setattr(depthwise, "depthwise_weight_grad", lambda *a: calls.append(1))
    fast, plain = pair(4, 3, 1, 2)
    fast.float()
    plain.float()
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fast(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x))
    assert calls == [] and fast.weight.grad is not None
