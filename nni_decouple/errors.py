"""The package's own error types.

Every error a user can cause (bad genotype, unknown op, missing dataset, existing output, ...)
raises a subclass of :class:`NNIDecoupleError` whose message names the problem and the fix.
The CLI prints such errors as one line and exits non-zero, without a traceback.
"""

from __future__ import annotations

import sys
from typing import Any


class NNIDecoupleError(Exception):
    """Base class of every error the package raises on bad user input."""


class GenotypeError(NNIDecoupleError, ValueError):
    """A genotype (file, text or dict) is malformed or describes an invalid cell."""


class UnknownOpError(GenotypeError, KeyError):
    """An operation name is not in the op registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(NNIDecoupleError, ValueError):
    """A dataset root is missing or not in the expected on-disk format."""


class ConfigError(NNIDecoupleError, ValueError):
    """A search option, recipe or combination of options is invalid."""


class OutputExistsError(NNIDecoupleError, FileExistsError):
    """An output directory already holds a run; nothing is overwritten without asking."""


class CheckpointError(NNIDecoupleError, ValueError):
    """A checkpoint cannot be used here (other space, other method, corrupt file)."""


def one_line(error: BaseException) -> str:
    """The message of ``error`` as the one line the CLI prints.

    A DataLoader worker re-raises an error of ours with the worker's traceback in the message
    ("Caught DataError in DataLoader worker process 0. Original Traceback ..."); its last line is
    the original message.
    """
    text = str(error)
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
    return last[len(prefix):] if last.startswith(prefix) else last


def show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
    """``warnings.showwarning`` without the source line: ``UserWarning: message``."""
    stream = file if file is not None else sys.stderr
    try:
        stream.write(f"{category.__name__}: {message}\n")
    except OSError:
        pass
