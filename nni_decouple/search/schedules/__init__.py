"""Axis "schedule": Lightning modules that decide what updates when.

:class:`BilevelModule` is DARTS' first-order bilevel step (an architecture step on a validation
batch, then a weight step on a training batch), extended with what every method of the package
needs: architecture parameters in a deterministic order (NNI's own module de-duplicates them
through a ``set``, so the optimizer's parameter order changes between runs and a checkpoint's
optimizer state may not fit), architecture regularisers contributed by the axes, and a hook
(:meth:`arch_step_due`) for sparse architecture updates. Other schedules subclass it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.oneshot.pytorch.differentiable import DartsLightningModule

from ..cell import DecoupledCell

#: Schedules by name (the composer's "schedule" axis); subclasses register with :func:`register_schedule`.
SCHEDULES: dict[str, type[BilevelModule]] = {}


def register_schedule(name: str):
    def _register(cls: type[BilevelModule]) -> type[BilevelModule]:
        SCHEDULES[name] = cls
        return cls

    return _register


def unique(items: Iterator[Any]) -> list[Any]:
    """De-duplicate by identity, keeping first-seen order."""
    seen: set[int] = set()
    out = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


@register_schedule("bilevel")
class BilevelModule(DartsLightningModule):
    """First-order bilevel search (DARTS) over :class:`DecoupledCell` supernets."""

    #: Why this schedule cannot run in several processes (``None``: it can); ``run_search`` refuses
    #: ``devices > 1`` with this message before any process starts or any file is written.
    ddp_refusal: ClassVar[str | None] = None

    def __init__(self, training_module: Any, *, arc_learning_rate: float = 3e-4,
                 arc_betas: tuple[float, float] = (0.5, 0.999), arc_weight_decay: float = 1e-3,
                 gradient_clip_val: float | None = 5.0, log_prob_every_n_step: int = 10, warmup_epochs: int = 0,
                 ) -> None:
        super().__init__(training_module, arc_learning_rate=arc_learning_rate, gradient_clip_val=gradient_clip_val,
                         log_prob_every_n_step=log_prob_every_n_step, warmup_epochs=warmup_epochs)
        self.arc_betas, self.arc_weight_decay = arc_betas, arc_weight_decay

    # ---------------------------------------------------------------- structure
    def cells(self) -> list[DecoupledCell]:
        return [m for m in self.supernet_modules() if isinstance(m, DecoupledCell)]

    def axis_modules(self) -> list[nn.Module]:
        """The distinct op-weight and topology modules (shared ones once)."""
        return unique(m for cell in self.cells() for m in (cell.op_weights, cell.topology))

    def arch_parameters(self) -> list[nn.Parameter]:
        params = [p for m in self.supernet_modules() if hasattr(m, "arch_parameters") for p in m.arch_parameters()]
        return unique(iter(params))

    def configure_architecture_optimizers(self) -> torch.optim.Optimizer:
        params = self.arch_parameters()
        if not params:
            raise ValueError("no architecture parameters found: nothing to search")
        return torch.optim.Adam(params, lr=self.arc_learning_rate, betas=self.arc_betas,
                                weight_decay=self.arc_weight_decay)

    # ---------------------------------------------------------------- losses
    def arch_regularizer(self) -> torch.Tensor | None:
        """Sum of the regularisers the axes define (e.g. FairDARTS' zero-one loss, r(beta))."""
        terms = [t for m in self.axis_modules() if hasattr(m, "regularizer") for t in [m.regularizer()]
                 if t is not None]
        return torch.stack(terms).sum() if terms else None

    def inner_loss(self, batch: Any, batch_idx: int) -> torch.Tensor:
        out = self.training_module.training_step(batch, batch_idx)
        return out["loss"] if isinstance(out, dict) else out

    def arch_loss(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.inner_loss(batch, batch_idx)
        reg = self.arch_regularizer()
        if reg is not None:
            self.log("arch_regularizer", reg.detach())
            loss = loss + reg
        return loss

    # ---------------------------------------------------------------- steps
    def arch_step_due(self, batch_idx: int) -> bool:
        """Whether this step updates the architecture (every step after warm-up here)."""
        return self.trainer.current_epoch >= self.warmup_epochs

    def arch_step(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.architecture_optimizers()
        optimizer.zero_grad()
        loss = self.arch_loss(batch, 2 * batch_idx)
        self.manual_backward(loss)
        optimizer.step()
        optimizer.zero_grad()  # arch gradients never leak into the weight step

    def weight_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.inner_loss(batch, 2 * batch_idx + 1)
        self.advance_optimization(loss, batch_idx, self.gradient_clip_val)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.arch_step_due(batch_idx):
            self.arch_step(batch["val"], batch_idx)
        loss = self.weight_step(batch["train"], batch_idx)
        for p in self.arch_parameters():  # weight gradients never leak into the next arch step
            p.grad = None
        self.advance_lr_schedulers(batch_idx)
        if batch_idx % self.log_prob_every_n_step == 0:
            self.log_probs(self.export_probs())
        return loss
