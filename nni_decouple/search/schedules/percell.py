"""Axis "schedule": D-DARTS' distributed search, one optimizer and one loss per cell.

Every *player* (a cell, or a group of identical cells sharing one alpha in DARTOpti) has its own
Adam (lr 3e-3, betas (0.9, 0.999), weight decay 1e-3) and its own cosine schedule, stepped once
per epoch, and minimises its own loss (paper Eq. 3-8)::

    L_T^i = L_CE + w01 * L01^i + wabl * L_AB^i
    L01^i = -mean((sigmoid(alpha_i) - 0.5)^2)                     (FairDARTS' zero-one loss, cell i)
    M^i   = L_CE(C) - L_CE(C without cell i)                      (marginal contribution, Eq. 6)
    L_AB^i = (M^i - mean(M)) / |mean(M)|,  0 if mean(M) = 0       (Eq. 7, see below for |.|)

Each player's optimizer steps on the gradient of *its own* loss with respect to *its own*
alphas, ``dL_T^i / d alpha_i``, nothing else: the architecture step computes those gradients with
:func:`torch.autograd.grad` (no ``.grad`` of a network weight is ever written) and the weight step
does not see the zero-one or ablation losses (the public code adds the zero-one loss to the weight
loss and lets arch and weight gradients accumulate into each other).

The ablation term carries gradient (in the public code it is a detached constant). "Cell i
deactivated" (``deactivate``) means:

- ``zero`` (default): the cell's op weights are replaced by zeros, so every node and the cell's
  output are zero and the following cells see only their other input. This is the network
  without the cell, with every shape kept; it does not depend on the cell's own alphas.
- ``uniform``: the op weights are all 0.5 (sigmoid(0), no preference): the contribution of the
  cell's *architecture* rather than of the cell (the public code uses random weights).

Gradient of L_AB^i with respect to alpha_i. Write L = L_CE(C), L_j = L_CE(C without player j),
m = mean(M), n players. Since L_i does not depend on alpha_i, the chain rule through every term of
Eq. 7 gives::

    dL_AB^i/dalpha_i = a_i * dL/dalpha_i + b_i * sum_j dL_j/dalpha_i
    a_i = -(M^i - m) sign(m) / m^2,      b_i = 1 / (n |m|) - a_i / n

so two backward passes (one of L, one of sum_j L_j) serve every player, each with its own
coefficients. The numerator term rewards alpha_i for lowering the loss of the networks in which
*another* cell is missing; the denominator term rescales by how far M^i is from the mean.

Sign (``|mean(M)|``): Eq. 7 divides by mean(M), which is negative when cells help (removing one
raises the loss), and Eq. 8 adds L_AB, so minimising Eq. 8 literally would *raise* each cell's
marginal contribution M^i = L(C) - L(C \\ i), i.e. train cells to hurt the network; the public
code subtracts the term instead (and detaches it). Dividing by a positive normaliser gives the
intended direction in both cases: a cell is pushed to lower its M^i relative to the mean, to matter more.

Normaliser (``normaliser``). mean(M) changes sign during a search, and differentiating ``|mean(M)|``
puts a coefficient ``a_i`` that grows like ``1/m^2`` on each cell's own CE gradient: near m = 0 one
cell's architecture gradient was measured at 1.3e5 times its CE gradient, pointing against it, and
one such step freezes that cell's Adam for thousands of steps (docs/ddarts.md). So:

- ``bounded`` (default): ``D = max(|mean(M)|, mean(|M|), floor)``, a constant of the step (its
  gradient is stopped). ``mean(|M|)`` does not vanish when contributions of both signs cancel,
  and ``floor`` (``normaliser_floor``, 1e-2) bounds the term when every cell contributes nothing.
  Then ``a_i = 0`` and ``b_i = 1 / (n D)``: the term adds ``wabl / (n D) * sum_j dL_j/dalpha_i``,
  the gradient of the networks missing another cell, to the cell's CE gradient.
- ``stopped``: ``D = |mean(M)|`` with its gradient stopped (bounded coefficient on the own CE
  gradient, but ``1/|m|`` on the rest).
- ``mean``: ``|mean(M)|`` differentiated (the formula above; before issue 20 the only choice),
  kept to compare.

Marginal contributions are computed (``ablation``):

- ``exact``: one extra forward (and an alpha-only backward) per player and step: n + 1 forwards.
- ``fast``: one player per step, in round robin; the other players' contributions are the last
  measured ones (every player is re-measured every n steps), and ``sum_j dL_j/dalpha_i`` is
  estimated by ``n * dL_r/dalpha_i`` of the player r measured this step (unbiased over a cycle).
  The first architecture step measures all players once to fill the table. 2 forwards per step.
- ``none``: no ablation term (the L_F search of the paper's DD-2 / DD-6 models).

Extra forwards run with batch-norm running statistics frozen, so the ablated networks never leak
into the statistics used for validation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..cell import DecoupledCell
from . import BilevelModule, register_schedule, unique

ABLATIONS = ("exact", "fast", "none")
NORMALISERS = ("bounded", "stopped", "mean")
DEACTIVATIONS = ("zero", "uniform")


@dataclass
class Player:
    """Cells that share one set of architecture parameters, one optimizer and one loss."""

    name: str
    op_weights: nn.Module
    cells: list[DecoupledCell] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)


class CosineAfterWarmup(torch.optim.lr_scheduler.LRScheduler):
    """Cosine annealing from the base lr to ``eta_min`` over the epochs after ``warmup`` (flat before).

    Closed form, so a resumed run continues where it stopped; stepped once per epoch.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_epochs: int, warmup: int = 0, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.total_epochs, self.warmup, self.eta_min = int(total_epochs), int(warmup), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        span = max(1, self.total_epochs - self.warmup)
        t = min(max(0, self.last_epoch - self.warmup), span)
        factor = (1.0 + math.cos(math.pi * t / span)) / 2.0
        return [self.eta_min + (base - self.eta_min) * factor for base in self.base_lrs]


@contextmanager
def frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """Batch norm still normalises with batch statistics, but running statistics stay as they are."""
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
            count = m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None
            saved.append((m, m.momentum, count))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


@contextmanager
def deactivated(cells: Sequence[DecoupledCell], how: str) -> Iterator[None]:
    """Switch ``cells`` off through their op-weight override (see the module docstring)."""
    for cell in cells:
        with torch.no_grad():
            weights = cell.op_weights()
        value = 0.0 if how == "zero" else 0.5
        cell.op_weight_override = torch.full_like(weights, value)
    try:
        yield
    finally:
        for cell in cells:
            cell.op_weight_override = None


@register_schedule("percell")
class PerCellModule(BilevelModule):
    """D-DARTS: per-player Adam + cosine, FairDARTS zero-one loss and the ablation loss (module docstring)."""

    def __init__(self, training_module: Any, *, arc_learning_rate: float = 3e-3,
                 arc_betas: tuple[float, float] = (0.9, 0.999), arc_weight_decay: float = 1e-3,
                 arc_learning_rate_min: float = 1e-3, w01: float = 7.0, wabl: float = 0.5,
                 ablation: str = "exact", deactivate: str = "zero", normaliser: str = "bounded",
                 normaliser_floor: float = 1e-2, gradient_clip_val: float | None = 5.0,
                 log_prob_every_n_step: int = 10, warmup_epochs: int = 0, arch_epochs: int | None = None) -> None:
        super().__init__(training_module, arc_learning_rate=arc_learning_rate, arc_betas=arc_betas,
                         arc_weight_decay=arc_weight_decay, gradient_clip_val=gradient_clip_val,
                         log_prob_every_n_step=log_prob_every_n_step, warmup_epochs=warmup_epochs)
        if ablation not in ABLATIONS:
            raise ConfigError(f"unknown ablation {ablation!r}: choose one of {', '.join(ABLATIONS)}")
        if deactivate not in DEACTIVATIONS:
            raise ConfigError(f"unknown deactivation {deactivate!r}: choose one of {', '.join(DEACTIVATIONS)}")
        if normaliser not in NORMALISERS:
            raise ConfigError(f"unknown ablation normaliser {normaliser!r}: choose one of {', '.join(NORMALISERS)}")
        self.normaliser, self.normaliser_floor = normaliser, float(normaliser_floor)
        for name, value in (("w01", w01), ("wabl", wabl), ("arc_learning_rate_min", arc_learning_rate_min),
                            ("normaliser_floor", normaliser_floor)):
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        self.arc_learning_rate_min = arc_learning_rate_min
        self.w01, self.wabl = float(w01), float(wabl)
        self.ablation, self.deactivate = ablation, deactivate
        self.arch_epochs = arch_epochs
        self._players: list[Player] | None = None
        #: Last measured marginal contribution of every player (``fast`` reuses them between measurements).
        self.marginal_contributions: list[float] | None = None
        self._next_player = 0
        #: What the last architecture step measured (losses, contributions, ablation losses), for logs and tests.
        self.last_ablation: dict[str, Any] = {}

    # ---------------------------------------------------------------- players and optimizers
    def players(self) -> list[Player]:
        """One player per distinct op-weight module, in network order (shared alphas: one player)."""
        if self._players is None:
            players: dict[int, Player] = {}
            for cell in self.cells():
                key = id(cell.op_weights)
                if key not in players:
                    players[key] = Player(cell.label, cell.op_weights)
                players[key].cells.append(cell)
            owner: dict[int, str] = {}
            for player in players.values():
                params = unique(p for c in player.cells for p in c.arch_parameters())
                for p in params:
                    if owner.setdefault(id(p), player.name) != player.name:
                        raise ConfigError(
                            f"an architecture parameter is shared by {owner[id(p)]} and {player.name}: per-cell search "
                            f"needs every parameter in one cell (or one group of identical cells)")
                player.params = params
            self._players = list(players.values())
            if not self._players:
                raise ValueError("no searchable cells found: nothing to search")
        return self._players

    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for player in self.players() for p in player.params]

    def configure_architecture_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(player.params, lr=self.arc_learning_rate, betas=self.arc_betas,
                                 weight_decay=self.arc_weight_decay) for player in self.players()]

    def _arch_scheduler(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        epochs = self.arch_epochs
        if epochs is None:
            epochs = self._trainer.max_epochs if self._trainer is not None and self._trainer.max_epochs else 50
        scheduler = CosineAfterWarmup(optimizer, epochs, self.warmup_epochs, self.arc_learning_rate_min)
        return {"scheduler": scheduler, "interval": "epoch", "frequency": 1}

    def configure_optimizers(self) -> Any:
        """NNI's merge of weight and architecture optimizers, plus a cosine schedule per architecture optimizer
        (NNI gives architecture optimizers none)."""
        conf = super().configure_optimizers()

        def is_arch(opt: Any) -> bool:
            return bool(getattr(opt, "is_arch_optimizer", False))

        if isinstance(conf, torch.optim.Optimizer):
            conf = [conf]
        if isinstance(conf, tuple) and len(conf) == 2:  # ([optimizers], [schedulers])
            optimizers, schedulers = list(conf[0]), list(conf[1])
            schedulers += [self._arch_scheduler(o) for o in optimizers if is_arch(o)]
            return optimizers, schedulers
        if isinstance(conf, list) and all(isinstance(c, dict) for c in conf):
            for entry in conf:
                if is_arch(entry["optimizer"]) and "lr_scheduler" not in entry:
                    entry["lr_scheduler"] = self._arch_scheduler(entry["optimizer"])
            return conf
        if isinstance(conf, list) and all(isinstance(c, torch.optim.Optimizer) for c in conf):
            return conf, [self._arch_scheduler(o) for o in conf if is_arch(o)]
        raise ConfigError(f"cannot attach architecture schedulers to the optimizer configuration {conf!r}")

    def _arch_optimizers(self) -> list[Any]:
        optimizers = self.architecture_optimizers()
        return list(optimizers) if isinstance(optimizers, list) else [optimizers]

    # ---------------------------------------------------------------- losses
    def _cross_entropy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.training_module(x)
        if isinstance(logits, tuple):
            logits = logits[0]
        criterion = getattr(self.training_module, "criterion", None)
        return criterion(logits, y) if criterion is not None else F.cross_entropy(logits, y)

    @staticmethod
    def zero_one_loss(player: Player) -> torch.Tensor:
        """FairDARTS' L01 over the player's op weights (sigmoid(alpha)): ``-mean((w - 0.5)^2)``."""
        return -((player.op_weights() - 0.5) ** 2).mean()

    @staticmethod
    def _grads(loss: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]

    def _ablated(self, x: torch.Tensor, y: torch.Tensor, player: Player,
                 params: list[nn.Parameter]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """L_CE of the network without ``player``, and its gradient w.r.t. every architecture parameter
        (zero on the player's own parameters: the network without the player has none of them)."""
        with deactivated(player.cells, self.deactivate), frozen_bn_stats(self.training_module):
            loss = self._cross_entropy(x, y)
            grads = self._grads(loss, params)
        own = {id(p) for p in player.params}
        grads = [torch.zeros_like(g) if id(p) in own else g for p, g in zip(params, grads, strict=True)]
        return loss.detach(), grads

    def player_gradients(self, batch: Any) -> list[list[torch.Tensor]]:
        """``dL_T^i / d alpha_i`` for every player i (a list of tensors per player, in ``players()`` order).

        Writes no ``.grad`` anywhere; updates :attr:`marginal_contributions` and :attr:`last_ablation`.
        """
        x, y = batch
        players = self.players()
        params = self.arch_parameters()
        n = len(players)
        loss = self._cross_entropy(x, y)
        g_full = self._grads(loss, params)
        loss = loss.detach()

        reg_terms = [self.w01 * self.zero_one_loss(p) for p in players] if self.w01 > 0 else []
        axis_reg = self.arch_regularizer()
        if axis_reg is not None:
            reg_terms.append(axis_reg)
        g_reg = self._grads(torch.stack(reg_terms).sum(), params) if reg_terms else None

        coeff_full, coeff_abl = [1.0] * n, [0.0] * n
        g_abl: list[torch.Tensor] | None = None
        stats: dict[str, Any] = {"loss": float(loss)}
        if self.ablation != "none" and self.wabl > 0 and n > 1:
            if self.ablation == "exact" or self.marginal_contributions is None:
                measured = list(range(n))
            else:
                measured = [self._next_player % n]
                self._next_player = (self._next_player + 1) % n
            ablated_losses = {}
            for r in measured:
                ablated_losses[r], grads = self._ablated(x, y, players[r], params)
                g_abl = grads if g_abl is None else [a + b for a, b in zip(g_abl, grads, strict=True)]
            scalars = _dist_mean(torch.stack([loss, *ablated_losses.values()]))
            full = float(scalars[0])
            mc = list(self.marginal_contributions) if self.marginal_contributions is not None else [0.0] * n
            for r, value in zip(ablated_losses, scalars[1:].tolist(), strict=True):
                mc[r] = full - value
            self.marginal_contributions = mc
            # With one measured player, sum_j dL_j/dalpha estimates as n * dL_r/dalpha.
            scale = n / len(measured)
            mean = sum(mc) / n
            stats.update(mc=list(mc), mean_mc=mean, measured=measured, ablated=[float(v) for v in scalars[1:]])
            if self.normaliser == "bounded":
                norm = max(abs(mean), sum(abs(v) for v in mc) / n, self.normaliser_floor)
            else:
                norm = abs(mean)
            stats["normaliser"] = norm
            if norm > 1e-12:
                sign = 1.0 if mean > 0 else -1.0
                l_ab = []
                for i in range(n):
                    d = mc[i] - mean
                    # differentiated |mean M| ("mean"): a_i on the own CE gradient; stopped: none
                    a = -d * sign / mean ** 2 if self.normaliser == "mean" else 0.0
                    b = 1.0 / (n * norm) - a / n
                    coeff_full[i] = 1.0 + self.wabl * a
                    coeff_abl[i] = self.wabl * b * scale
                    l_ab.append(d / norm)
                stats["l_ab"] = l_ab
            else:
                stats["l_ab"] = [0.0] * n
        self.last_ablation = stats

        out: list[list[torch.Tensor]] = []
        k = 0
        for i, player in enumerate(players):
            grads = []
            first = k
            for _ in player.params:
                g = coeff_full[i] * g_full[k]
                if g_abl is not None and coeff_abl[i] != 0.0:
                    g = g + coeff_abl[i] * g_abl[k]
                if g_reg is not None:
                    g = g + g_reg[k]
                grads.append(g)
                k += 1
            out.append(grads)
            self.grad_stats.add(player.name, grads, g_full[first:k])
        return [[_dist_mean(g) for g in grads] for grads in out]

    # ---------------------------------------------------------------- steps
    def arch_step(self, batch: Any, batch_idx: int, players: Sequence[int] | None = None) -> None:
        """Every player (or only ``players``) steps its own optimizer on its own gradient."""
        grads = self.player_gradients(batch)
        optimizers = self._arch_optimizers()
        chosen = range(len(grads)) if players is None else players
        all_players = self.players()
        for i in chosen:
            optimizer = optimizers[i]
            optimizer.zero_grad()
            for p, g in zip(all_players[i].params, grads[i], strict=True):
                p.grad = g
            optimizer.step()
            optimizer.zero_grad()
        self._log_ablation()

    def _log_ablation(self) -> None:
        if self._trainer is None:
            return
        stats = self.last_ablation
        self.log("arch/ce", stats["loss"])
        if "mean_mc" in stats:
            self.log("arch/mean_marginal_contribution", stats["mean_mc"])
            for player, mc, l_ab in zip(self.players(), stats["mc"], stats["l_ab"], strict=True):
                self.log(f"arch/marginal_contribution/{player.name}", mc)
                self.log(f"arch/ablation_loss/{player.name}", l_ab)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ddarts"] = {"marginal_contributions": self.marginal_contributions,
                                "next_player": self._next_player}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("ddarts") or {}
        self.marginal_contributions = state.get("marginal_contributions")
        self._next_player = int(state.get("next_player", 0))


def _dist_mean(t: torch.Tensor) -> torch.Tensor:
    """Average over processes (DDP), so that every rank takes the same architecture step."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        t = t.clone()
        torch.distributed.all_reduce(t)
        t /= torch.distributed.get_world_size()
    return t
