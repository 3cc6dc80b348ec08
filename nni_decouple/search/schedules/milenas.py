"""Axis "schedule": MiLeNAS' mixed-level optimisation (He et al., CVPR 2020).

The architecture parameters descend on a mix of the validation and the training loss,

    grad_arch = lambda_val * grad L_val(w, arch) + lambda_train * grad L_train(w, arch) (+ grad of the
                axes' regularisers, e.g. Stretchable Cells' lambda * r(beta), added once),

both evaluated at the current weights ``w``, while the weights descend on ``L_train`` as in DARTS.
MiLeNAS uses ``lambda = 1`` and Adam with betas (0.5, 0.999) for the architecture; Stretchable
Cells (Eq. 18) searches with it. Any method of the package may use this schedule.

``shared_forward`` (default on) computes ``L_train`` once per step: its backward pass gives the
weight gradient and the architecture's ``grad L_train`` together, so a step costs two forward and
backward passes, as DARTS' first order does. The public MiLeNAS code spends three (the
architecture step evaluates ``L_train`` itself, then the weight step evaluates it again after the
architecture update); the architecture gradient is the same, the weight gradient differs only in
seeing the architecture before rather than after this step's update. ``shared_forward=False``
reproduces the three-pass order.
"""

from __future__ import annotations

from typing import Any

import torch

from . import BilevelModule, register_schedule


@register_schedule("milenas")
class MiLeNASModule(BilevelModule):
    """Mixed-level search: architecture gradient ``lambda_val * grad L_val + lambda_train * grad L_train``."""

    def __init__(self, training_module: Any, *, lambda_train: float = 1.0, lambda_val: float = 1.0,
                 shared_forward: bool = True, **kwargs: Any) -> None:
        super().__init__(training_module, **kwargs)
        self.lambda_train, self.lambda_val = float(lambda_train), float(lambda_val)
        self.shared_forward = bool(shared_forward)

    def val_arch_loss(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """``lambda_val * L_val`` plus the axes' regularisers (counted once, not per loss)."""
        return self.add_regularizer(self.lambda_val * self.inner_loss(batch, batch_idx))

    def mixed_step(self, train_batch: Any, val_batch: Any, batch_idx: int) -> torch.Tensor:
        """One architecture update and one weight update; returns the training loss."""
        arch_optimizer = self.architecture_optimizers()
        params = self.arch_parameters()
        arch_optimizer.zero_grad()
        if not self.shared_forward:
            loss = self.val_arch_loss(val_batch, 2 * batch_idx)
            loss = loss + self.lambda_train * self.inner_loss(train_batch, 2 * batch_idx)
            self.arch_backward(loss)
            self.record_arch_gradients()
            arch_optimizer.step()
            arch_optimizer.zero_grad()
            return self.weight_step(train_batch, batch_idx)
        self.arch_backward(self.val_arch_loss(val_batch, 2 * batch_idx))
        val_grads = [None if p.grad is None else p.grad.clone() for p in params]
        for p in params:
            p.grad = None
        # The weight step zeroes the weight gradients, backpropagates L_train (which also reaches the
        # architecture parameters: grad L_train), clips and steps the weights.
        loss = self.weight_step(train_batch, batch_idx)
        for p, g in zip(params, val_grads, strict=True):
            train_grad = p.grad
            if train_grad is None and g is None:
                continue
            mixed = self.lambda_train * train_grad if train_grad is not None else torch.zeros_like(p)
            p.grad = mixed if g is None else mixed + g
        self.record_arch_gradients()
        arch_optimizer.step()
        arch_optimizer.zero_grad()
        return loss

    def bench_parts(self) -> dict[str, Any]:
        """For the benchmark harness: ``arch`` is what the architecture adds to a step (the ``L_val``
        pass, plus the ``L_train`` pass with ``shared_forward=False``) and its update; ``weight`` the
        weight step (whose backward pass also yields ``grad L_train`` when shared)."""

        def arch(batch: Any, batch_idx: int) -> torch.Tensor:
            optimizer = self.architecture_optimizers()
            optimizer.zero_grad()
            loss = self.val_arch_loss(batch["val"], 2 * batch_idx)
            if not self.shared_forward:
                loss = loss + self.lambda_train * self.inner_loss(batch["train"], 2 * batch_idx)
            self.arch_backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            return loss

        def weight(batch: Any, batch_idx: int) -> torch.Tensor:
            loss = self.weight_step(batch["train"], batch_idx)
            for p in self.arch_parameters():
                p.grad = None
            return loss

        return {"arch": arch, "weight": weight}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.arch_step_due(batch_idx):
            loss = self.mixed_step(batch["train"], batch["val"], batch_idx)
        else:
            loss = self.weight_step(batch["train"], batch_idx)
        for p in self.arch_parameters():  # weight-step gradients never leak into the next arch step
            p.grad = None
        self.advance_lr_schedulers(batch_idx)
        if batch_idx % self.log_prob_every_n_step == 0:
            self.log_probs(self.export_probs())
        return loss
