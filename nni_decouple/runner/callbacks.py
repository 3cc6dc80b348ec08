"""Lightning callbacks that make a search reliable: exact resume and a stop on divergence.

- :class:`RNGStateCallback` stores the Python, NumPy and torch (and CUDA) random states in every
  checkpoint and restores them on resume, so that the random draws after a resume (Gumbel noise,
  drop path, data augmentation) are the ones an uninterrupted run makes. Data order is made
  resumable separately by :class:`~nni_decouple.data.EpochSeededSampler`.
- :class:`ConfigStamp` writes the run's options into every checkpoint, so that a resume can refuse
  a checkpoint of another method, space or option set with a clear error.
- :class:`DivergenceGuard` stops the search at the first NaN or Inf in the loss or in an
  architecture parameter, naming the epoch, the step and the last good checkpoint. Lightning saves
  no checkpoint when a fit ends with an exception, so that checkpoint stays intact.
- :class:`MemoryFormat` puts the supernet's 4-D parameters (so its activations, after the first
  convolution) in channels-last before the search: part of the fast path (docs/performance.md).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from ..errors import NNIDecoupleError


class DivergenceError(NNIDecoupleError, FloatingPointError):
    """The search diverged (NaN or Inf)."""


class RNGStateCallback(pl.Callback):
    """Save and restore every random state with the checkpoint."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        # Only tensors and plain Python values, so that checkpoints load with weights_only=True.
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        checkpoint["rng_states"] = {
            "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if states is None:
            return
        random.setstate(states["python"])
        kind, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


class ConfigStamp(pl.Callback):
    """Write the run's options into every checkpoint, so that ``--resume`` can tell a checkpoint of
    another run (method, space, options) from this run's before Lightning loads it into the wrong
    supernet (which fails with a long state-dict traceback, or worse, loads a partial match)."""

    KEY = "nni_decouple_config"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[self.KEY] = self.config


def _loss_of(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


class DivergenceGuard(pl.Callback):
    """Raise :class:`DivergenceError` at the first non-finite loss or architecture parameter."""

    def __init__(self, checkpoint_dir: Path | None = None) -> None:
        self.checkpoint_dir = checkpoint_dir

    def _last_good(self, trainer: pl.Trainer) -> str:
        callback = trainer.checkpoint_callback
        path = getattr(callback, "last_model_path", "") or ""
        if not path and self.checkpoint_dir is not None and (self.checkpoint_dir / "last.ckpt").is_file():
            path = str(self.checkpoint_dir / "last.ckpt")
        if path:
            return f"the last good checkpoint is {path} (resume from it with --resume, e.g. with a lower learning rate)"
        return "no checkpoint was written yet (the first epoch diverged): lower the learning rates and start again"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = _loss_of(outputs)
        where = f"epoch {trainer.current_epoch}, step {batch_idx}"
        if loss is not None and not bool(torch.isfinite(loss.detach()).all()):
            raise DivergenceError(f"the search diverged at {where}: the loss is {float(loss):g}; "
                                  f"{self._last_good(trainer)}")
        arch_parameters = getattr(pl_module, "arch_parameters", None)
        if callable(arch_parameters):
            for p in arch_parameters():
                if not bool(torch.isfinite(p.detach()).all()):
                    raise DivergenceError(f"the search diverged at {where}: an architecture parameter of shape "
                                          f"{tuple(p.shape)} holds NaN or Inf; {self._last_good(trainer)}")


class LastCheckpoint(pl.callbacks.ModelCheckpoint):
    """``checkpoints/last.ckpt`` at the end of every training epoch, and nothing else: one file per save.

    Lightning's ``ModelCheckpoint(save_last=True, save_top_k=1)`` writes every checkpoint twice
    (``epoch=N-step=M.ckpt`` and an identical ``last.ckpt``), and with ``save_top_k=0`` it writes
    ``last.ckpt`` only in epochs that saved another file, which a search (no validation loop) never
    does; ``save_last='link'`` briefly leaves ``last.ckpt`` dangling between deleting the old epoch file
    and linking the new one, where a kill would lose the run's only checkpoint."""

    def __init__(self, dirpath: str | Path) -> None:
        super().__init__(dirpath=str(dirpath), save_last=True, save_top_k=0, every_n_epochs=1,
                         save_on_train_epoch_end=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # saved at the end of the training epoch only


def channels_last_refusal(module: torch.nn.Module) -> str | None:
    """Why ``module`` must keep the default memory format on the CPU (``None``: channels-last is safe).

    torch 2.14's CPU backward of a strided 1x1 convolution with at most 4 input channels corrupts the
    heap in channels-last (glibc abort or segfault; any output width, inputs of 8 x 8 and larger; found
    by a 2-channel search, reproduced with ``nn.Conv2d(4, 4, 1, stride=2)`` alone). DARTS' skip
    connection at stride 2 (``FactorizedReduce``) is such a convolution in supernets of up to 8
    channels, and in PC-DARTS' partial-channel edges, whose ops see 1/K of the channels; such a module
    may also say ``channels_last_safe = False``."""
    for m in module.modules():
        if getattr(m, "channels_last_safe", True) is False:
            return f"{type(m).__name__} is not channels-last safe"
        if (isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1
                and m.in_channels <= 4):
            return f"a strided 1x1 convolution with {m.in_channels} input channels (a torch CPU fault)"
    return None


class MemoryFormat(pl.Callback):
    """Convert the module's 4-D parameters and buffers to ``memory_format`` at ``setup``.

    A convolution with channels-last weights returns channels-last outputs, so from the stem on
    every activation of the supernet is channels-last: on one CPU thread the DARTS candidate ops
    run in about half the time (docs/performance.md). Parameters keep their identity (their data
    is replaced), so optimizers and checkpoints see the same tensors; values are those of the
    default format up to float rounding of the convolutions. A supernet :func:`channels_last_refusal`
    refuses keeps the default format (the rest of the fast path still applies).
    """

    def __init__(self, memory_format: torch.memory_format = torch.channels_last) -> None:
        self.memory_format = memory_format

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.memory_format == torch.channels_last and channels_last_refusal(pl_module) is not None:
            return
        pl_module.to(memory_format=self.memory_format)
