"""Network blocks around the cells: stems and the cell input preprocessor.

Shared by the NNI search space (:mod:`nni_decouple.spaces.cell`) and the exported network
(:mod:`nni_decouple.models.network`), so a searched cell sees the same inputs in both. Imports torch
only: exported networks run without NNI.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..options import STEMS
from .ops import FactorizedReduce, ReLUConvBN

Stem = Literal["cifar", "imagenet", "imagenet_stride4"]


class CellPreprocessor(nn.Module):
    """Bring both cell inputs to ``C`` channels at this cell's input resolution.

    ``used`` marks which inputs the cell reads; an unread input passes through unchanged (a fixed cell
    of an exported network may ignore one input, and its preprocessor would never get a gradient).
    """

    def __init__(self, c_pprev: int, c_prev: int, c: int, reduction_prev: bool, affine: bool,
                 used: tuple[bool, bool] = (True, True)) -> None:
        super().__init__()
        pre0 = FactorizedReduce(c_pprev, c, affine) if reduction_prev else ReLUConvBN(c_pprev, c, 1, 1, 0, affine)
        self.pre0 = pre0 if used[0] else nn.Identity()
        self.pre1 = ReLUConvBN(c_prev, c, 1, 1, 0, affine) if used[1] else nn.Identity()

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.pre0(inputs[0]), self.pre1(inputs[1])]


class CifarStem(nn.Sequential):
    """DARTS' CIFAR stem: one 3x3 conv + BN at stride 1. Both cell inputs of the first cell are its output."""

    def __init__(self, in_chans: int, c_out: int) -> None:
        super().__init__(nn.Conv2d(in_chans, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))


class ImageNetStem(nn.Module):
    """DARTS' ImageNet stem: stem0 (two 3x3 convs, stride 4) and stem1 (one 3x3 conv, stride 2), returning
    the two cell inputs ``(s0, s1)``. With ``stride=4`` stem0's second conv keeps the resolution (D-DARTS'
    ImageNet network for its DARTOpti ResNets, which then reach ResNet's stride 32 with three reductions)."""

    def __init__(self, in_chans: int, c: int, stride: int = 8) -> None:
        super().__init__()
        if stride not in (4, 8):
            raise ConfigError(f"the ImageNet stem has stride 8 (DARTS) or 4 (D-DARTS), got {stride}")
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_chans, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 3, stride=stride // 4, padding=1, bias=False), nn.BatchNorm2d(c),
        )
        # Not in place (DARTS' is): an in-place ReLU would rewrite stem0's output, the first cell input and
        # the first feature level, behind the back of anything that reads it (cells apply their own ReLU).
        self.stem1 = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def make_stem(kind: Stem, in_chans: int, c_out: int) -> tuple[nn.Module, int]:
    """The stem ``kind`` and its stride: ``cifar`` (3x3 conv + BN, stride 1), ``imagenet`` (DARTS' three
    3x3 convs, stride 8) or ``imagenet_stride4`` (the same at stride 4, as D-DARTS trains DARTOpti)."""
    if kind == "cifar":
        return CifarStem(in_chans, c_out), 1
    if kind == "imagenet":
        return ImageNetStem(in_chans, c_out, 8), 8
    if kind == "imagenet_stride4":
        return ImageNetStem(in_chans, c_out, 4), 4
    raise ConfigError(f"unknown stem {kind!r}: use one of {', '.join(STEMS)}")
