"""What a search or a retraining prints: our own lines, and none of the libraries' lines that say
nothing to our user.

- :func:`quiet_libraries`: a context manager the package wraps around its calls into Lightning and
  NNI. It drops, by message, the lines listed in :data:`NOISE` (device availability, Lightning's
  cloud advertisement, its ``limit_val_batches`` note, its "``Trainer.fit`` stopped: ``max_epochs``
  reached" at the end, NNI's config inference and strategy-kind lines, deprecation warnings raised
  inside those libraries) and nothing else: a filter on the
  libraries' loggers and handlers and a ``warnings`` filter, both removed on exit, so a user's
  own code and logging are untouched.
- :class:`EpochConsole`: a Lightning callback printing one line per epoch (epoch, losses,
  accuracies, seconds, ETA) when there is no progress bar (stdout is not a terminal, or
  ``--no-progress``), and any notes other parts queue for the epoch (:func:`note`), under the bar too.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

from pytorch_lightning import Callback

#: Messages of Lightning and NNI that say nothing to a user of this package (matched with ``re.search``).
NOISE: tuple[str, ...] = (
    r"^GPU available: ", r"^TPU available: ", r"^HPU available: ", r"^IPU available: ",
    r"litlogger|litmodels|lightning\.ai|Tip: For seamless cloud",
    r"`Trainer\(limit_val_batches=",
    r"^`Trainer\.fit` stopped: `max_epochs=\d+` reached",
    r"^Config is not provided\. Will try to infer",
    r"^Strategy is found to be a one-shot strategy",
    r"does not have many workers which may be a bottleneck",
    r"is found to be not a nn\.Module",
)
_NOISE = re.compile("|".join(f"(?:{p})" for p in NOISE))
#: Loggers of the libraries the package calls (their children's records pass through their handlers).
LIBRARY_LOGGERS = ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric",
                   "nni", "nni.nas", "nni.experiment", "nni.runtime", "nni.nas.experiment", "nni.nas.strategy")
#: Warnings issued from inside these libraries are dropped when they are deprecation notices.
_LIBRARY_MODULES = r"(pytorch_lightning|lightning|lightning_fabric|nni|torchmetrics)(\..*)?"


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to judge
            return True
        return not _NOISE.search(message)


def is_noise(message: str) -> bool:
    return bool(_NOISE.search(message))


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Drop :data:`NOISE` from the libraries' logging and their deprecation warnings while inside."""
    drop = _DropNoise()
    attached: list[logging.Filterer] = []
    for name in ("", *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        targets: list[logging.Filterer] = [*logger.handlers] if not name else [logger, *logger.handlers]
        for target in targets:
            target.addFilter(drop)
            attached.append(target)
    with warnings.catch_warnings():
        for pattern in NOISE:
            warnings.filterwarnings("ignore", message=f".*{pattern.lstrip('^')}")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=_LIBRARY_MODULES)
        warnings.filterwarnings("ignore", category=FutureWarning, module=_LIBRARY_MODULES)
        try:
            import pytorch_lightning.utilities.warnings as pl_warnings  # Lightning's own deprecation category

            warnings.filterwarnings("ignore", category=pl_warnings.PossibleUserWarning, message=".*workers")
        except (ImportError, AttributeError):
            pass
        try:
            yield
        finally:
            for target in attached:
                target.removeFilter(drop)


def _format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _metric_text(name: str, value: float) -> str:
    short = name.removesuffix("_epoch")
    return f"{short} {value:.1%}" if short.endswith("acc") else f"{short} {value:.4g}"


class EpochConsole(Callback):
    """One line per epoch (when ``lines``) and the notes queued for it (always), printed by rank 0.

    Other parts add a line to the current epoch's output with :func:`note` (e.g. a health check)."""

    def __init__(self, lines: bool, total_epochs: int, stream: Any = None) -> None:
        self.lines, self.total_epochs = lines, total_epochs
        self.stream = stream
        self.notes: list[str] = []
        self._started = self._epoch_started = 0.0
        self._first_epoch: int | None = None

    # Lightning hooks ---------------------------------------------------------
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._started = time.perf_counter()
        self._first_epoch = trainer.current_epoch

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "global_rank", 0) != 0:
            self.notes.clear()
            return
        out: list[str] = []
        if self.lines:
            out.append(self.epoch_line(trainer))
        out.extend(self.notes)
        self.notes.clear()
        stream = self.stream or sys.stdout
        for text in out:
            print(text, file=stream, flush=True)

    # ---------------------------------------------------------------------------
    def epoch_line(self, trainer: Any) -> str:
        epoch = trainer.current_epoch + 1
        total = trainer.max_epochs or self.total_epochs
        now = time.perf_counter()
        done = epoch - (self._first_epoch or 0)
        per_epoch = (now - self._started) / max(1, done)
        metrics: dict[str, float] = {}
        for key, value in trainer.callback_metrics.items():  # `x_epoch` (the epoch's mean) wins over `x`
            if key.endswith("_step") or not re.search(r"(loss|acc)", key) or getattr(value, "numel", lambda: 1)() != 1:
                continue
            name = key.removesuffix("_epoch")
            if key.endswith("_epoch") or name not in metrics:
                metrics[name] = float(value)
        keys = sorted(metrics, key=lambda k: (not k.startswith("train"), "acc" in k, k))
        parts = [f"epoch {epoch}/{total}", *(_metric_text(k, metrics[k]) for k in keys),
                 f"{now - self._epoch_started:.1f} s", f"ETA {_format_seconds(per_epoch * max(0, total - epoch))}"]
        return "  ".join(parts)


def note(trainer: Any, text: str) -> bool:
    """Queue ``text`` to be printed with this epoch's line (after it); ``False`` if the trainer has no console."""
    for callback in getattr(trainer, "callbacks", ()):
        if isinstance(callback, EpochConsole):
            callback.notes.append(text)
            return True
    return False


def wants_progress_bar(requested: bool) -> bool:
    """The progress bar only on a terminal: a log file gets one line per epoch instead."""
    return requested and sys.stdout.isatty()
