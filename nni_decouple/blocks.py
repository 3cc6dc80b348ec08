"""Network blocks around the cells: stems and the cell input preprocessor.

Shared by the NNI search space (:mod:`nni_decouple.spaces.cell`) and the exported network
(:mod:`nni_decouple.network`), so a searched cell sees the same inputs in both. Imports torch
only: exported networks run without NNI.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .errors import ConfigError
from .ops import FactorizedReduce, ReLUConvBN

Stem = Literal["cifar", "imagenet"]
STEMS: tuple[str, ...] = ("cifar", "imagenet")


class CellPreprocessor(nn.Module):
    """Bring both cell inputs to ``C`` channels at this cell's input resolution."""

    def __init__(self, c_pprev: int, c_prev: int, c: int, reduction_prev: bool, affine: bool) -> None:
        super().__init__()
        self.pre0 = (FactorizedReduce(c_pprev, c, affine) if reduction_prev
                     else ReLUConvBN(c_pprev, c, 1, 1, 0, affine))
        self.pre1 = ReLUConvBN(c_prev, c, 1, 1, 0, affine)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.pre0(inputs[0]), self.pre1(inputs[1])]


class CifarStem(nn.Sequential):
    """DARTS' CIFAR stem: one 3x3 conv + BN at stride 1. Both cell inputs of the first cell are its output."""

    def __init__(self, in_chans: int, c_out: int) -> None:
        super().__init__(nn.Conv2d(in_chans, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))


class ImageNetStem(nn.Module):
    """DARTS' ImageNet stem: stem0 (two convs, stride 4) and stem1 (one conv, stride 2).
    Returns the two cell inputs ``(s0, s1)``."""

    def __init__(self, in_chans: int, c: int) -> None:
        super().__init__()
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_chans, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
        )
        self.stem1 = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def make_stem(kind: Stem, in_chans: int, c_out: int) -> tuple[nn.Module, int]:
    """CIFAR stem (3x3 conv + BN, stride 1) or DARTS' ImageNet stem (three 3x3 convs, stride 8).
    Returns the stem and its stride."""
    if kind == "cifar":
        return CifarStem(in_chans, c_out), 1
    if kind == "imagenet":
        return ImageNetStem(in_chans, c_out), 8
    raise ConfigError(f"unknown stem {kind!r}: use 'cifar' or 'imagenet'")
