"""Candidate operations: one name -> factory registry shared by search spaces and networks.

A factory is called as ``factory(C, stride, affine)`` and returns a module mapping
``(N, C, H, W)`` to ``(N, C, H / stride, W / stride)``. The eight DARTS ops and the five extra
ops of D-DARTS' space S_o are registered here; :func:`register_op` adds more.
This module imports torch only: exported networks use it without NNI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import UnknownOpError
from .depthwise import DepthwiseConv2d

OpFactory = Callable[[int, int, bool], nn.Module]


# ----------------------------------------------------------------------------- blocks
class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv -> BN, the DARTS building block (also the input preprocessor of a cell)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, dilation=dilation,
                            groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked (ReLU -> depthwise -> pointwise -> BN) blocks; the stride is on the first."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, 1, affine),
        )


class FactorizedConv(nn.Sequential):
    """ReLU -> (1 x k) conv -> (k x 1) conv -> BN: the factorised k x k conv of NASNet / S_o."""

    def __init__(self, c: int, k: int, stride: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, k), stride=(1, stride), padding=(0, k // 2), bias=False),
            nn.Conv2d(c, c, (k, 1), stride=(stride, 1), padding=(k // 2, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class Bottleneck(nn.Sequential):
    """ResNet bottleneck as an op (D-DARTS' bottleneck_1x3x1): 1x1, kxk (strided), 1x1 expanding to
    ``expansion * C``, then a 1x1 back to C so that the op keeps the edge's width."""

    def __init__(self, c: int, stride: int, kernel_size: int = 3, expansion: int = 4, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
            nn.Conv2d(c, c, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c, affine=affine),
            nn.Conv2d(c, expansion * c, 1, bias=False),
            nn.BatchNorm2d(expansion * c, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(expansion * c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 convs (DARTS' skip connection at stride 2)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # The second branch starts one pixel in; one zero row/column at the far side gives it conv_1's output
        # size at odd sizes and is never sampled at even ones (stride 2), so the pad is unconditional: no
        # Python branch on tensor shapes, which FX and torch.export cannot trace.
        y = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(y)], dim=1))


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the output shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Identity(nn.Identity):
    """Skip connection at stride 1 (a named type so that ``is_skip`` can recognise it)."""


# ----------------------------------------------------------------------------- registry
OPS: dict[str, OpFactory] = {}


def register_op(name: str, factory: OpFactory | None = None):
    """Register ``factory(C, stride, affine) -> nn.Module`` under ``name`` (usable as a decorator)."""

    def _register(f: OpFactory) -> OpFactory:
        if name in OPS:
            raise ValueError(f"op {name!r} is already registered")
        OPS[name] = f
        return f

    return _register(factory) if factory is not None else _register


def create_op(name: str, channels: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """Build the op ``name``; unknown names raise :class:`UnknownOpError` listing the known ones."""
    try:
        factory = OPS[name]
    except KeyError:
        raise UnknownOpError(
            f"unknown op {name!r}: known ops are {', '.join(sorted(OPS))} "
            f"(register new ones with nni_decouple.models.ops.register_op)"
        ) from None
    return factory(channels, stride, affine)


def check_ops(names: Sequence[str]) -> list[str]:
    """Validate a list of op names (known, no duplicates) and return it as a list."""
    names = list(names)
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise UnknownOpError(
            f"unknown op {unknown[0]!r}: known ops are {', '.join(sorted(OPS))} "
            f"(register new ones with nni_decouple.models.ops.register_op)"
        )
    if len(set(names)) != len(names):
        raise UnknownOpError(f"op list {names} names an op twice: list each op once")
    if not names:
        raise UnknownOpError("the op list is empty: give at least one op")
    return names


register_op("none", lambda c, stride, affine: Zero(stride))
register_op("max_pool_3x3", lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1))
register_op("avg_pool_3x3",
            lambda c, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))
register_op("skip_connect",
            lambda c, stride, affine: Identity() if stride == 1 else FactorizedReduce(c, c, affine))
register_op("sep_conv_3x3", lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine))
register_op("sep_conv_5x5", lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine))
register_op("dil_conv_3x3", lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine))
register_op("dil_conv_5x5", lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine))
# D-DARTS' S_o additions (DARTOpti).
register_op("conv_3x1_1x3", lambda c, stride, affine: FactorizedConv(c, 3, stride, affine))
register_op("conv_7x1_1x7", lambda c, stride, affine: FactorizedConv(c, 7, stride, affine))
register_op("simple_conv_1x1", lambda c, stride, affine: ReLUConvBN(c, c, 1, stride, 0, affine))
register_op("simple_conv_3x3", lambda c, stride, affine: ReLUConvBN(c, c, 3, stride, 1, affine))
register_op("bottleneck_1x3x1", lambda c, stride, affine: Bottleneck(c, stride, 3, 4, affine))

# The op sets (and the names of the ops registered above) live in the torch-free op_sets module, so that
# reading and checking a genotype needs no torch; they are importable from here as before.
from .op_sets import (  # noqa: E402,F401
    BUILTIN_OPS,
    DARTS_OPS,
    DARTS_OPS_NO_NONE,
    EDARTS_SPLIT_CONVS,
    OP_SETS,
    S_O_OPS,
)


def resolve_ops(spec: str | Sequence[str]) -> list[str]:
    """An op-set name (``darts``, ``s_o``, ...) or a list / comma-separated string of op names."""
    if isinstance(spec, str):
        if spec in OP_SETS:
            return list(OP_SETS[spec])
        spec = [s.strip() for s in spec.split(",") if s.strip()]
        if len(spec) == 1 and spec[0] not in OPS:
            raise UnknownOpError(
                f"unknown op set or op {spec[0]!r}: op sets are {', '.join(OP_SETS)}; "
                f"ops are {', '.join(sorted(OPS))}"
            )
    return check_ops(spec)


def is_parametric(name: str) -> bool:
    """Whether an op has weights (DOTS' parametric group); pools, skip and none do not."""
    return name not in {"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"}
