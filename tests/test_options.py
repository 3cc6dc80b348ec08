"""Range checks shared by the commands: :class:`Bounded` argparse types and the ``need`` helpers."""

from __future__ import annotations

import argparse
import re

import pytest

from nni_decouple.errors import ConfigError
from nni_decouple.options import (
    DROP_RATE,
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    at_least,
    need_seed,
    need_whole,
)


@pytest.mark.parametrize("kind, good, bad, what", [
    (POSITIVE, ["1e-9", "3"], ["0", "-1", "nan", "inf", "x", ""], "a number > 0"),
    (NON_NEGATIVE, ["0", "7.5"], ["-1e-9", "nan", "-inf"], "a number >= 0"),
    (FINITE, ["-3", "0", "2.5"], ["nan", "inf", "-inf", "one"], "a finite number"),
    (PROBABILITY, ["0", "1", "0.85"], ["1.01", "-0.1", "nan"], "a number in [0, 1]"),
    (DROP_RATE, ["0", "0.99"], ["1", "nan"], "a number in [0, 1)"),
    (at_least(0), ["0", "12"], ["-1", "1.5", "nan", "2e3"], "a whole number >= 0"),
], ids=["positive", "non-negative", "finite", "probability", "drop-rate", "whole"])
def test_bounded_types(kind, good, bad, what):
    assert kind.what == what
    for text in good:
        assert kind(text) == kind.cast(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"must be {what}, got {text!r}")):
            kind(text)


def test_need_helpers_name_the_flag():
    need_whole("epochs", 1, 1)
    need_seed(2**32 - 1)
    with pytest.raises(ConfigError, match=r"--epochs must be at least 1 \(a whole number\), got True"):
        need_whole("epochs", True, 1)
    with pytest.raises(ConfigError, match=r"--seed must be a whole number in 0..2\*\*32-1, got 4294967296"):
        need_seed(2**32)
