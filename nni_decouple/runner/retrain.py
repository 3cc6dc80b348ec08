"""Retrain a searched network from scratch with DARTS' evaluation recipe (PyTorch Lightning).

:data:`RECIPES` holds DARTS' two evaluation recipes; :class:`RetrainModule` applies one: SGD with
momentum, cosine (CIFAR) or per-epoch exponential (ImageNet) learning-rate decay, gradient clipping,
cutout, the auxiliary head's loss, label smoothing, and a drop-path probability that rises linearly
over the epochs. :func:`retrain` runs it and writes a run directory whose ``model.pth`` loads
through ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...))``.
Lightning only, no NNI: retraining runs where NNI is not installed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..errors import CheckpointError
from ..io import atomic_write_bytes, atomic_write_json
from ..models.network import DartsNetwork
from .train_config import RECIPE_FLAGS, RECIPES, Recipe

__all__ = ["Recipe", "RECIPE_FLAGS", "RECIPES", "RetrainModule", "cutout", "build_trainer", "retrain", "save_weights"]


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DeVries & Taylor's cutout as DARTS applies it: zero one ``size`` x ``size`` square per image,
    centred anywhere in the image and clipped at the border."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(h, (n,), generator=generator).to(x.device)
    cx = torch.randint(w, (n,), generator=generator).to(x.device)
    half = size // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    cy, cx = cy.view(n, 1, 1), cx.view(n, 1, 1)
    inside = (ys >= cy - half) & (ys < cy + half) & (xs >= cx - half) & (xs < cx + half)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class RetrainModule(pl.LightningModule):
    """Trains a :class:`DartsNetwork` with a :class:`Recipe`; its ``model`` is the timm model itself."""

    def __init__(self, model: DartsNetwork, recipe: Recipe) -> None:
        super().__init__()
        self.model = model
        self.recipe = recipe
        self.save_hyperparameters({"recipe": dataclasses.asdict(recipe)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        # DARTS: drop_path_prob = drop_path * epoch / epochs.
        self.model.drop_path_prob = self.recipe.drop_path * self.current_epoch / max(1, self.recipe.epochs)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        x = cutout(x, self.recipe.cutout)
        logits, aux = self.model.forward_train(x)
        smoothing = self.recipe.label_smoothing
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        if aux is not None and self.recipe.auxiliary_weight > 0:
            loss = loss + self.recipe.auxiliary_weight * F.cross_entropy(aux, y, label_smoothing=smoothing)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train_acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True, sync_dist=True)
        self.log("val_acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        r = self.recipe
        optimizer = torch.optim.SGD(self.model.parameters(), lr=r.learning_rate, momentum=r.momentum,
                                    weight_decay=r.weight_decay)
        if r.scheduler == "step":
            scheduler: Any = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=r.lr_gamma)
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=r.epochs,
                                                                   eta_min=r.learning_rate_min)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}




def build_trainer(out: Path, epochs: int, *, grad_clip: float, devices: int = 1, accelerator: str = "cpu",
                  progress_bar: bool = True, **kwargs: Any) -> pl.Trainer:
    """A Lightning trainer with the run layout of the search: ``checkpoints/`` (``last.ckpt`` every epoch),
    ``logs/metrics.csv`` and ``tensorboard/``."""
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    callbacks = [ModelCheckpoint(dirpath=str(out / "checkpoints"), save_last=True, save_top_k=0, every_n_epochs=1)]
    loggers = [CSVLogger(str(out), name="logs", version=""),
               TensorBoardLogger(str(out), name="tensorboard", version="")]
    return pl.Trainer(max_epochs=epochs, accelerator=accelerator, devices=devices,
                      strategy="ddp" if devices > 1 else "auto", callbacks=callbacks, logger=loggers,
                      gradient_clip_val=grad_clip or None, enable_progress_bar=progress_bar,
                      enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1, **kwargs)


def save_weights(model: DartsNetwork, path: Path) -> Path:
    """The timm-loadable weights: ``{"state_dict": ...}`` without the auxiliary head, written atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("aux_head.")}
    buffer = io.BytesIO()
    torch.save({"state_dict": state}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def check_checkpoint_fits(ckpt: Path, module: pl.LightningModule) -> None:
    """Refuse a checkpoint that is unreadable or holds another network, before Lightning fails on it
    with a state-dict traceback."""
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    except Exception as e:  # truncated, not a checkpoint, or without a state_dict
        raise CheckpointError(f"--resume: {str(ckpt)!r} cannot be read ({type(e).__name__}): it is truncated or not "
                              f"a training checkpoint; resume from a good copy of it or start a new run") from None
    expected = module.state_dict()
    differ = sorted(k for k in set(state) | set(expected)
                    if getattr(state.get(k), "shape", None) != getattr(expected.get(k), "shape", None))
    if differ:
        raise CheckpointError(f"--resume: {str(ckpt)!r} holds another network ({len(differ)} weights differ, e.g. "
                              f"{', '.join(differ[:3])}); resume with the same architecture and network options "
                              f"or start a new run")


def retrain(model: DartsNetwork, recipe: Recipe, train_set: Dataset, val_set: Dataset, out: Path, *,
            seed: int = 0, devices: int = 1, num_workers: int = 0, progress_bar: bool = True,
            resume: bool = False, trainer_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``model`` and write ``out/model.pth`` and ``out/results.json``; returns the results."""
    pl.seed_everything(seed, workers=True, verbose=False)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, num_workers=num_workers,
                              generator=generator, persistent_workers=num_workers > 0)
    val_loader = DataLoader(val_set, batch_size=recipe.batch_size, shuffle=False, num_workers=num_workers,
                            persistent_workers=num_workers > 0)
    module = RetrainModule(model, recipe)
    trainer = build_trainer(out, recipe.epochs, grad_clip=recipe.grad_clip, devices=devices,
                            progress_bar=progress_bar, **(trainer_kwargs or {}))
    ckpt = None
    if resume:
        ckpt = out / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise CheckpointError(f"--resume: {str(ckpt)!r} does not exist, so there is nothing to resume")
        check_checkpoint_fits(ckpt, module)
    started = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(ckpt) if ckpt else None)
    seconds = time.perf_counter() - started
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    results = {"val_acc": metrics.get("val_acc"), "val_loss": metrics.get("val_loss"),
               "train_acc": metrics.get("train_acc_epoch", metrics.get("train_acc")), "epochs": recipe.epochs,
               "seconds": round(seconds, 2), "recipe": dataclasses.asdict(recipe)}
    if trainer.is_global_zero:
        model.drop_path_prob = 0.0
        save_weights(model, out / "model.pth")
        atomic_write_json(out / "results.json", results)
    return results


def load_results(out: Path) -> dict[str, Any]:
    path = out / "results.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
