"""The Lightning evaluator that every search runs under.

:class:`SearchModule` is the inner (weight-training) module that NNI's one-shot strategies wrap:
cross-entropy, accuracy, SGD with momentum and a cosine schedule (the DARTS search recipe).
:func:`build_evaluator` assembles it with a Lightning trainer (checkpoints, CSV and TensorBoard
logs, a progress bar) into NNI's ``Lightning`` evaluator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..nni_noise import importing_nni, quiet_nni_logs

with importing_nni():
    import nni
    from nni.nas.evaluator.pytorch import Lightning, LightningModule, Trainer
quiet_nni_logs()  # NNI's per-run training_service warning, by message (see nni_noise)


@nni.trace
class SearchModule(LightningModule):
    """Weight training for a supernet: loss, accuracy, SGD + cosine (DARTS defaults)."""

    def __init__(self, learning_rate: float = 0.025, learning_rate_min: float = 0.001, momentum: float = 0.9,
                 weight_decay: float = 3e-4, max_epochs: int = 50, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        if isinstance(logits, tuple):  # networks with an auxiliary head
            logits = logits[0]
        loss = self.criterion(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        train = stage == "train"
        if not train and self.trainer.training:
            # A validation step inside the training loop: NNI's ENAS takes its reward from it, read from
            # the trainer's callback metrics right after this step, so log per step (not per epoch).
            self.log(f"{stage}_loss", loss, prog_bar=True, on_epoch=False, on_step=True, sync_dist=True)
            self.log(f"{stage}_acc", acc, prog_bar=True, on_epoch=False, on_step=True, sync_dist=True)
            return loss
        self.log(f"{stage}_loss", loss, prog_bar=True, on_epoch=True, on_step=train, sync_dist=not train)
        self.log(f"{stage}_acc", acc, prog_bar=True, on_epoch=True, on_step=False, sync_dist=not train)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    # Multi-trial NNI strategies (Random, RegularizedEvolution, TPE, ...) train every sampled network
    # with this module alone and rank them by what it reports: the validation accuracy, as NNI's own
    # Classification module does. Inside a one-shot strategy the module is wrapped and reports nothing.
    def _reports(self) -> bool:
        return (self.trainer.lightning_module is self and nni.get_current_parameter() is not None
                and "val_acc" in self.trainer.callback_metrics)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking and self._reports():
            nni.report_intermediate_result(float(self.trainer.callback_metrics["val_acc"]))

    def on_fit_end(self) -> None:
        if self._reports():
            nni.report_final_result(float(self.trainer.callback_metrics["val_acc"]))

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.SGD(self.parameters(), lr=hp.learning_rate, momentum=hp.momentum,
                                    weight_decay=hp.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, hp.max_epochs),
                                                               eta_min=hp.learning_rate_min)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    return float((logits.argmax(-1) == target).float().mean())


def build_trainer(out: Path | None, max_epochs: int, *, devices: int = 1, accelerator: str = "cpu",
                  progress_bar: bool = True, limit_val_batches: float | int = 1.0, **kwargs: Any) -> Trainer:
    """A traced Lightning trainer writing checkpoints and CSV/TensorBoard logs under ``out``."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from .callbacks import LastCheckpoint

    callbacks = kwargs.pop("callbacks", [])
    loggers: Any = False
    if out is not None:
        # One file, checkpoints/last.ckpt, written at the end of every training epoch (searches run no
        # validation loop): what --resume reads.
        callbacks = [LastCheckpoint(out / "checkpoints"), *callbacks]
        loggers = [CSVLogger(str(out), name="logs", version=""),
                   TensorBoardLogger(str(out), name="tensorboard", version="")]
    strategy = kwargs.pop("strategy", "ddp" if devices > 1 else "auto")
    return Trainer(max_epochs=max_epochs, accelerator=accelerator, devices=devices, strategy=strategy,
                   callbacks=callbacks, logger=loggers, enable_checkpointing=out is not None,
                   enable_progress_bar=progress_bar, enable_model_summary=False, num_sanity_val_steps=0,
                   limit_val_batches=limit_val_batches, log_every_n_steps=1, **kwargs)


@nni.trace  # NNI's evaluators must be traceable (NNI reads their arguments for mutables)
class SearchEvaluator(Lightning):
    """NNI's ``Lightning`` evaluator, with a new trainer for every network it trains.

    NNI's sequential engine (multi-trial strategies in one process) evaluates every sampled network with
    the same evaluator object; a Lightning trainer that has run ``max_epochs`` stops the next ``fit`` at
    once, so every network after the first went untrained and unranked. The trainer is rebuilt from its
    traced arguments instead. One-shot strategies train once and see no difference.
    """

    def evaluate(self, model: Any) -> Any:
        if getattr(self, "_trained_one", False):
            self.trainer = self.trainer.trace_copy().get()
        self._trained_one = True
        return super().evaluate(model)


def build_evaluator(train_loader: Any, val_loader: Any, trainer: Trainer, **module_kwargs: Any) -> Lightning:
    """NNI's ``Lightning`` evaluator: a :class:`SearchModule` (``module_kwargs``) under ``trainer``.

    The cosine schedule's length (``max_epochs``) is the trainer's unless given, so the learning rate
    reaches ``learning_rate_min`` on the run's last epoch rather than climbing again after epoch 50.
    """
    if "max_epochs" not in module_kwargs:
        epochs = getattr(trainer, "max_epochs", None)
        if isinstance(epochs, int) and epochs > 0:
            module_kwargs["max_epochs"] = epochs
    return SearchEvaluator(SearchModule(**module_kwargs), trainer, train_dataloaders=train_loader,
                           val_dataloaders=val_loader)
