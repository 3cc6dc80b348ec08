"""Range checks for command-line and recipe options, shared by ``search``, ``train`` and ``bench``.

Two forms, both raised before any data is read or any file is written:

- :func:`need` and friends check a parsed config (``SearchConfig.check``, ``Recipe.check``) and
  raise a :class:`~nni_decouple.errors.ConfigError` naming the flag, the value and what it must be;
- :class:`Bounded` is an argparse ``type=`` for a method's own numeric options, so that the flag
  and the same key in a recipe are refused alike (NaN and infinity included).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from .errors import ConfigError

#: The datasets :mod:`nni_decouple.data` registers and the stems :mod:`nni_decouple.models.blocks` builds, named
#: here so that the CLI's parsers offer them without importing torch (tests check both lists against the registries).
DATASET_NAMES: tuple[str, ...] = ("cifar10", "cifar100", "digits", "imagefolder", "imagenet", "mnist5k")
STEMS: tuple[str, ...] = ("cifar", "imagenet", "imagenet_stride4")

#: The largest seed: NumPy's generators take seeds below 2**32.
MAX_SEED = 2**32 - 1

#: Lightning precisions of a search or a benchmark row (``16-mixed``: CUDA only; ``64-true``: for checks).
PRECISIONS: tuple[str, ...] = ("32-true", "64-true", "bf16-mixed", "16-mixed")
#: Where a search runs (Lightning's accelerator).
DEVICES: tuple[str, ...] = ("cpu", "cuda")


def need(ok: bool, option: str, value: Any, what: str) -> None:
    """Refuse ``--option value`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"--{option} must be {what}, got {value!r}")


def finite(value: Any) -> bool:
    """A real number, not a bool, NaN or infinity."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(value: Any, least: int) -> bool:
    """A whole number (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def need_whole(option: str, value: Any, least: int) -> None:
    need(whole(value, least), option, value, f"at least {least} (a whole number)")


def need_seed(value: Any) -> None:
    need(whole(value, 0) and value <= MAX_SEED, "seed", value, "a whole number in 0..2**32-1")


def need_precision(precision: Any, device: Any) -> None:
    """Refuse a precision or device Lightning cannot run (float16 autocast is CUDA's)."""
    need(precision in PRECISIONS, "precision", precision, f"one of {', '.join(PRECISIONS)}")
    need(device in DEVICES, "device", device, " or ".join(DEVICES))
    if precision == "16-mixed" and device == "cpu":
        raise ConfigError("--precision 16-mixed needs --device cuda (float16 autocast is CUDA's): "
                          "use --precision bf16-mixed on the CPU")


class Bounded:
    """An argparse ``type=``: a finite ``int`` or ``float`` within ``[low, high]`` (an end may be open)."""

    def __init__(self, cast: type, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> None:
        self.cast, self.low, self.high, self.low_open, self.high_open = cast, low, high, low_open, high_open
        kind = "a whole number" if cast is int else "a number"
        if low is not None and high is not None:
            self.what = f"{kind} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            self.what = f"{kind} {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            self.what = f"{kind} {'<' if high_open else '<='} {high:g}"
        else:
            self.what = f"a finite {kind[2:]}"
        self.__name__ = self.what  # argparse names the type in some of its messages

    def accepts(self, value: Any) -> bool:
        if not finite(value) or (self.cast is int and not isinstance(value, int)):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __call__(self, text: str) -> Any:
        try:
            value = self.cast(text)
        except (TypeError, ValueError):
            value = None
        if not self.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {text!r}")
        return value

    def __repr__(self) -> str:
        return f"Bounded({self.what})"


POSITIVE = Bounded(float, 0, low_open=True)
NON_NEGATIVE = Bounded(float, 0)
FINITE = Bounded(float)
PROBABILITY = Bounded(float, 0, 1)
DROP_RATE = Bounded(float, 0, 1, high_open=True)


def at_least(least: int) -> Bounded:
    """A whole number of at least ``least`` (epochs, counts)."""
    return Bounded(int, least)
