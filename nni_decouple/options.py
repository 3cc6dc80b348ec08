"""Range checks for command-line and recipe options, shared by ``search`` and ``train``.

Each failed check is a :class:`~nni_decouple.errors.ConfigError` that names the flag, the value
and what it must be, raised before any data is read or any file is written.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError

#: The largest seed: NumPy's generators take seeds below 2**32.
MAX_SEED = 2**32 - 1


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
