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


def backward_to_arch(module: Any, loss: torch.Tensor, backward: Any) -> None:
    """``backward(loss)`` stopped at ``module.arch_parameters()`` (``backward(loss, inputs=...)``).

    The architecture-only backward of the fast path (docs/performance.md): a full backward also computes
    every network-weight gradient, which the weight step zeroes before its own backward, and in a supernet
    of depthwise convolutions those are most of the backward's cost; the architecture gradients are the
    same. Several processes keep the full backward (DDP's reducer waits for every weight gradient); a
    loss that reaches no architecture parameter (frozen, or a stage without them) backpropagates nothing.
    ``backward``: the module's ``manual_backward`` (Lightning's, so precision plugins still apply)."""
    trainer = getattr(module, "_trainer", None)
    if trainer is not None and trainer.world_size != 1:
        backward(loss)
        return
    inputs = [p for p in module.arch_parameters() if p.requires_grad]
    if inputs and loss.requires_grad:
        backward(loss, inputs=inputs)


def unique(items: Iterator[Any]) -> list[Any]:
    """De-duplicate by identity, keeping first-seen order."""
    seen: set[int] = set()
    out = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


class ArchGradientStats:
    """Per player (cell label, or D-DARTS player), over the architecture steps since :meth:`pop`:
    how the step's gradient compares with the plain cross-entropy gradient (search health,
    :mod:`nni_decouple.runner.health`).

    ``max_ratio``: the largest ``|g| / |g_CE|``; ``min_cosine``: the smallest cosine between ``g``
    and ``g_CE``; ``opposing``: steps with a negative cosine (the regularisers reverse the descent).
    """

    #: Cap of a ratio whose cross-entropy gradient is zero (JSON has no infinity).
    CAP = 1e12

    def __init__(self) -> None:
        self.players: dict[str, dict[str, float]] = {}

    def add(self, player: str, total: list[torch.Tensor], ce: list[torch.Tensor]) -> None:
        if not total:
            return
        g = torch.cat([t.detach().reshape(-1).double() for t in total])
        c = torch.cat([t.detach().reshape(-1).double() for t in ce])
        ng, nc = float(g.norm()), float(c.norm())
        if ng == 0.0 and nc == 0.0:
            return  # a player this step did not reach (e.g. frozen in this stage)
        ratio = min(self.CAP, ng / nc) if nc > 0 else self.CAP
        cosine = float(g @ c) / (ng * nc) if ng > 0 and nc > 0 else 1.0
        entry = self.players.setdefault(player, {"steps": 0, "max_ratio": 0.0, "min_cosine": 1.0, "opposing": 0})
        entry["steps"] += 1
        entry["max_ratio"] = max(entry["max_ratio"], ratio)
        entry["min_cosine"] = min(entry["min_cosine"], cosine)
        entry["opposing"] += int(cosine < 0)

    def pop(self) -> dict[str, dict[str, float]]:
        out, self.players = self.players, {}
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
        #: Whether architecture losses backpropagate to the architecture parameters only (:meth:`arch_backward`);
        #: the strategy sets it from ``--fast``.
        self.arch_only_backward = True
        #: Architecture-step gradients against the plain cross-entropy gradient (search health).
        self.grad_stats = ArchGradientStats()
        self._reg_grads: list[torch.Tensor | None] | None = None

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
        """Cross-entropy plus the axes' regularisers; notes the regularisers' gradient for the health
        statistics (:meth:`record_arch_gradients`)."""
        loss = self.inner_loss(batch, batch_idx)
        return self.add_regularizer(loss)

    def add_regularizer(self, loss: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``loss + reg``; the gradient of ``scale * reg`` is accumulated for :meth:`record_arch_gradients`."""
        reg = self.arch_regularizer()
        if reg is None:
            return loss
        self.log("arch_regularizer", reg.detach())
        params = self.arch_parameters()
        live = [k for k, p in enumerate(params) if p.requires_grad]
        if reg.requires_grad and live:
            grads = torch.autograd.grad(scale * reg, [params[k] for k in live], retain_graph=True, allow_unused=True)
            acc = self._reg_grads if self._reg_grads is not None else [None] * len(params)
            for k, g in zip(live, grads, strict=True):
                if g is not None:
                    acc[k] = g if acc[k] is None else acc[k] + g
            self._reg_grads = acc
        return loss + reg

    def gradient_players(self) -> list[tuple[str, list[int]]]:
        """``(name, indices into arch_parameters())`` per player: the first cell label owning each parameter."""
        index = {id(p): k for k, p in enumerate(self.arch_parameters())}
        groups: dict[str, list[int]] = {}
        seen: set[int] = set()
        for cell in self.cells():
            for p in cell.arch_parameters():
                k = index.get(id(p))
                if k is not None and k not in seen:
                    seen.add(k)
                    groups.setdefault(cell.label, []).append(k)
        return list(groups.items())

    def record_arch_gradients(self) -> None:
        """Before an architecture step: compare each player's gradient (``.grad``) with its cross-entropy
        part (``.grad`` minus the regularisers' noted gradient)."""
        reg, self._reg_grads = self._reg_grads, None
        params = self.arch_parameters()
        total = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        ce = total if reg is None else [t if r is None else t - r for t, r in zip(total, reg, strict=True)]
        for name, ks in self.gradient_players():
            self.grad_stats.add(name, [total[k] for k in ks], [ce[k] for k in ks])

    def arch_backward(self, loss: torch.Tensor) -> None:
        """Backpropagate an architecture loss into the architecture parameters' ``.grad``; on the fast
        path (``arch_only_backward``) only into them (:func:`backward_to_arch`)."""
        if self.arch_only_backward:
            backward_to_arch(self, loss, self.manual_backward)
        else:
            self.manual_backward(loss)

    # ---------------------------------------------------------------- steps
    def arch_step_due(self, batch_idx: int) -> bool:
        """Whether this step updates the architecture (every step after warm-up here)."""
        return self.trainer.current_epoch >= self.warmup_epochs

    def arch_step(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.architecture_optimizers()
        optimizer.zero_grad()
        loss = self.arch_loss(batch, 2 * batch_idx)
        self.arch_backward(loss)
        self.record_arch_gradients()
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
