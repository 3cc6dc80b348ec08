"""DOTS' staged schedule: operation search first, then topology search on a pruned supernet.

Four stages (the published 70 CIFAR epochs: 15 / 15 / 20 / 20), each a span of epochs:

1. ``op_warmup``: network weights only (bilevel batches, no architecture step);
2. ``op_search``: first-order bilevel (DARTS): an architecture step on the ``val`` half, then a
   weight step on the ``train`` half;
3. ``topology_warmup``: the supernet restarts from fresh weights and is pruned to each edge's
   survivors (:class:`~..weights.staged.SurvivorWeights`: the best op of each group, or the top-k
   ops of Method 1); weights only, on the ``train`` half as in the public code
   (``topology_warmup_data="full"``: both halves);
4. ``topology_search``: one-level: weights and topology (plus the near-hard op choice) update
   from the same batch with separate optimizers, over the full training set. The ``{'train',
   'val'}`` batch of NNI's combined loader holds one batch of each half; this stage makes one
   one-level step on each, so an epoch sees the whole training set once at the search batch size,
   exactly like the public code's ``train_queue_Full``.

Temperature: ``T = 1`` except in topology search, where it falls per epoch as
``T(e) = t_max * (t_min / t_max) ** ((e - s) / (n - 1))`` (``s``: first epoch of the stage, ``n``:
its epochs; 10 -> 0.02 over 20 epochs as published). It divides the topology logits
(``softmax(beta / T)``) and, scaled by 1e-3, the choice between survivors. A Gumbel op search
(GDAS) anneals its own ``tau`` linearly from ``tau_max`` to ``tau_min`` over the op-search stage.

Short runs (``anneal``): per epoch, a topology search of one epoch never anneals (it runs, and is
derived, at ``t_max``), and one of two jumps from 10 to 0.02. So ``anneal='step'`` moves ``T`` (and
``tau``) after every step, along the same exponential (linear for ``tau``) from the stage's first
step to ``t_min`` at its last; ``'epoch'`` is the published per-epoch schedule; ``'auto'`` (default)
is ``'epoch'`` from :data:`MIN_EPOCH_ANNEAL` topology-search epochs on (the published 20) and
``'step'`` below. :meth:`StagePlan.describe` is the plan in words; the search prints it when it starts.

"Fresh weights" inside a running Lightning fit (the public code calls ``model.__init__`` and makes
new optimizers): at the first topology-warm-up epoch every weight module of the supernet that has
``reset_parameters`` (convolutions, batch norms with their running statistics, the classifier) is
re-initialised, the pruned ops are dropped from the weight optimizer, and both the weight
optimizer's state (momentum) and the architecture optimizer's state (Adam moments) are cleared. The
learning-rate schedule is *not* restarted: the public code steps its cosine with the global epoch,
so the topology stages continue the same cosine. Everything structural is persistent (pruned ops
through :class:`~..edges.MixedEdge`'s extra state, survivors in ``SurvivorWeights.kept``), so
``--resume`` works in every stage; the rest is recomputed from the epoch at each epoch start.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ..cell import DecoupledCell
from ..weights.staged import SurvivorWeights
from . import BilevelModule, register_schedule, unique

STAGES: tuple[str, ...] = ("op_warmup", "op_search", "topology_warmup", "topology_search")
#: The public DOTS code on CIFAR: 70 epochs split 15 / 15 / 20 / 20.
PUBLISHED_STAGE_EPOCHS: tuple[int, int, int, int] = (15, 15, 20, 20)
ANNEALS = ("auto", "epoch", "step")
#: ``anneal='auto'`` anneals per epoch from this many topology-search epochs on, per step below.
MIN_EPOCH_ANNEAL = 10
STAGE_NAMES = {"op_warmup": "op warm-up", "op_search": "op search", "topology_warmup": "topology warm-up",
               "topology_search": "topology search"}


def scale_stage_epochs(total: int, base: Sequence[int] = PUBLISHED_STAGE_EPOCHS) -> tuple[int, int, int, int]:
    """Split ``total`` epochs in the proportions of ``base`` (largest remainder), keeping at least one
    epoch of op search and of topology search: 70 -> (15, 15, 20, 20), 4 -> (1, 1, 1, 1)."""
    if total < 2:
        raise ConfigError(f"DOTS needs at least 2 epochs (one of op search, one of topology search), got {total}")
    weight = sum(base)
    raw = [total * b / weight for b in base]
    epochs = [math.floor(r) for r in raw]
    # largest remainder first; on ties the search stages get the epoch before the warm-ups
    for i in sorted(range(4), key=lambda i: (-(raw[i] - epochs[i]), i not in (1, 3), i))[: total - sum(epochs)]:
        epochs[i] += 1
    for need in (1, 3):  # the search stages cannot be empty: borrow from the largest other stage
        if epochs[need] == 0:
            donor = max((i for i in range(4) if i != need and epochs[i] > (1 if i in (1, 3) else 0)),
                        key=lambda i: epochs[i])
            epochs[donor] -= 1
            epochs[need] += 1
    return tuple(epochs)  # type: ignore[return-value]


@dataclass(frozen=True)
class StagePlan:
    """Which stage an epoch belongs to, and the temperatures of that epoch."""

    epochs: tuple[int, int, int, int] = PUBLISHED_STAGE_EPOCHS
    t_max: float = 10.0
    t_min: float = 0.02
    tau_max: float = 10.0
    tau_min: float = 0.1
    anneal: str = "auto"

    def __post_init__(self) -> None:
        if self.anneal not in ANNEALS:
            raise ConfigError(f"unknown anneal {self.anneal!r}: choose one of {', '.join(ANNEALS)}")
        if len(self.epochs) != 4 or any(int(e) != e or e < 0 for e in self.epochs):
            raise ConfigError(f"stage epochs must be 4 non-negative integers (op warm-up, op search, topology "
                              f"warm-up, topology search), got {list(self.epochs)}")
        if self.epochs[1] < 1 or self.epochs[3] < 1:
            raise ConfigError(f"stage epochs {list(self.epochs)}: op search and topology search need at least one "
                              f"epoch each")
        if not self.t_max >= self.t_min > 0 or not self.tau_max >= self.tau_min > 0:
            raise ConfigError(f"temperatures must satisfy max >= min > 0, got T {self.t_max} -> {self.t_min}, "
                              f"tau {self.tau_max} -> {self.tau_min}")

    @classmethod
    def resolve(cls, stage_epochs: Sequence[int] | None, total: int, **temperatures: float) -> StagePlan:
        """The plan for a run of ``total`` epochs. ``None`` scales the published 15/15/20/20 to
        ``total``. Given stage epochs may not exceed ``total``; fewer (a resumed run given more
        epochs) extend the topology search at its final temperature, with a warning."""
        if stage_epochs is None:
            return cls(scale_stage_epochs(total), **temperatures)
        epochs = tuple(int(e) for e in stage_epochs)
        if sum(epochs) > total:
            raise ConfigError(f"stage epochs {list(epochs)} add up to {sum(epochs)}, but the search runs {total} "
                              f"epochs: make them match (e.g. --epochs {sum(epochs)}) or omit --stage-epochs to "
                              f"scale the published 15,15,20,20")
        if sum(epochs) < total:
            warnings.warn(f"stage epochs {list(epochs)} add up to {sum(epochs)} < {total} epochs: the last "
                          f"{total - sum(epochs)} epoch(s) continue the topology search at T = t_min", stacklevel=2)
        return cls(epochs, **temperatures)  # type: ignore[arg-type]

    @property
    def starts(self) -> tuple[int, int, int, int]:
        s = [0]
        for e in self.epochs[:-1]:
            s.append(s[-1] + e)
        return tuple(s)  # type: ignore[return-value]

    @property
    def total(self) -> int:
        return sum(self.epochs)

    def stage(self, epoch: int) -> str:
        for name, start, length in zip(STAGES, self.starts, self.epochs, strict=True):
            if start <= epoch < start + length:
                return name
        return STAGES[-1]  # epochs beyond the plan (a resumed run given more epochs) keep searching topology

    @property
    def per_step(self) -> bool:
        """Whether temperatures move after every step (``anneal``, module docstring)."""
        if self.anneal == "auto":
            return self.epochs[3] < MIN_EPOCH_ANNEAL
        return self.anneal == "step"

    def _progress(self, epoch: int, fraction: float, stage: int) -> float:
        """Progress in [0, 1] through ``stage`` at ``fraction`` of ``epoch`` (steps done / steps)."""
        start, length = self.starts[stage], self.epochs[stage]
        if self.per_step:
            return min(1.0, max(0.0, (epoch - start + fraction) / max(1, length)))
        return min(1.0, max(0.0, (epoch - start) / max(1, length - 1)))

    def temperature(self, epoch: int, fraction: float = 0.0) -> float:
        """T at ``fraction`` (steps done / steps, per-step annealing only) of ``epoch``: 1 outside
        topology search, exponential t_max -> t_min inside it."""
        if self.stage(epoch) != "topology_search":
            return 1.0
        return self.t_max * (self.t_min / self.t_max) ** self._progress(epoch, fraction, 3)

    def tau(self, epoch: int, fraction: float = 0.0) -> float:
        """Gumbel tau: tau_max during op warm-up, linear to tau_min over op search."""
        if epoch < self.starts[1]:
            return self.tau_max
        return self.tau_max - (self.tau_max - self.tau_min) * self._progress(epoch, fraction, 1)

    def describe(self) -> str:
        """The plan in one line, e.g. ``stage plan (8 epochs): op warm-up epochs 1-2, op search epochs 3-4, ...``."""
        parts = []
        for name, start, length in zip(STAGES, self.starts, self.epochs, strict=True):
            if length:
                span = f"epoch {start + 1}" if length == 1 else f"epochs {start + 1}-{start + length}"
                parts.append(f"{STAGE_NAMES[name]} {span}")
        how = "every step" if self.per_step else "every epoch"
        return (f"stage plan ({self.total} epochs): {', '.join(parts)}; topology temperature {self.t_max:g} -> "
                f"{self.t_min:g}, annealed {how}")


@register_schedule("staged")
class StagedModule(BilevelModule):
    """DOTS' four-stage schedule over :class:`DecoupledCell` supernets (see module docstring).

    The cells' op weights must be :class:`SurvivorWeights` (what is pruned) and their topology
    may have ``enabled`` / ``temperature`` attributes (e.g. ``input_pairs``), switched on from the
    topology warm-up on.
    """

    ddp_refusal = ("the staged schedule (DOTS) prunes the supernet when the topology stage begins, which DDP "
                   "cannot follow: run the search in one process (--devices 1)")

    @staticmethod
    def describe_plan(options: dict[str, Any], epochs: int) -> list[str]:
        """The console's line about the plan a search of ``epochs`` epochs will run with ``options``
        (:meth:`StagePlan.describe`)."""
        temperatures = {k: options[k] for k in ("t_max", "t_min", "tau_max", "tau_min", "anneal")
                        if options.get(k) is not None}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the run itself warns about a short plan
            return [StagePlan.resolve(options.get("stage_epochs"), epochs, **temperatures).describe()]

    def __init__(self, training_module: Any, *, stage_epochs: Sequence[int] | None = None, t_max: float = 10.0,
                 t_min: float = 0.02, tau_max: float = 10.0, tau_min: float = 0.1, anneal: str = "auto",
                 topology_betas: tuple[float, float] = (0.9, 0.999), topology_warmup_data: str = "train",
                 **kwargs: Any) -> None:
        super().__init__(training_module, **kwargs)
        if topology_warmup_data not in ("train", "full"):
            raise ConfigError(f"topology_warmup_data must be 'train' (the weight half, as the public code) or "
                              f"'full' (both halves), got {topology_warmup_data!r}")
        self.stage_epochs = None if stage_epochs is None else tuple(int(e) for e in stage_epochs)
        self.temperatures = {"t_max": t_max, "t_min": t_min, "tau_max": tau_max, "tau_min": tau_min,
                             "anneal": anneal}
        self.topology_betas = tuple(topology_betas)
        self.topology_warmup_data = topology_warmup_data
        self._plan: StagePlan | None = None
        self._forced_stage: str | None = None
        if self.stage_epochs is not None:  # validate early; the total is checked when the fit starts
            StagePlan(self.stage_epochs, **self.temperatures)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- plan
    @property
    def plan(self) -> StagePlan:
        if self._plan is None:
            self._plan = StagePlan.resolve(self.stage_epochs, self.trainer.max_epochs, **self.temperatures)
        return self._plan

    @property
    def stage(self) -> str:
        if self._forced_stage is not None:
            return self._forced_stage
        return self.plan.stage(self.trainer.current_epoch)

    def setup(self, stage: str | None = None) -> Any:
        if self.trainer.world_size > 1:
            raise ConfigError(self.ddp_refusal)
        self._plan = None
        _ = self.plan  # fail before training if the stage epochs do not fit max_epochs
        if not self.plan.stage(self.trainer.current_epoch).startswith("topology"):
            for topology in self.topology_modules():  # not searched yet: the start is recorded as such
                if hasattr(topology, "enabled"):
                    topology.enabled = False
        return super().setup(stage)

    # ---------------------------------------------------------------- structure
    def survivor_modules(self) -> list[SurvivorWeights]:
        modules = unique(cell.op_weights for cell in self.cells())
        if not all(isinstance(m, SurvivorWeights) for m in modules):
            raise ConfigError("the staged (DOTS) schedule needs 'survivors' op weights in every cell")
        return modules  # type: ignore[return-value]

    def topology_modules(self) -> list[nn.Module]:
        return unique(cell.topology for cell in self.cells())

    @property
    def pruned(self) -> bool:
        return all(m.selected for m in self.survivor_modules())

    def prune_supernet(self) -> None:
        """Select every edge's survivors and drop the other ops from the cells for good."""
        for weights in self.survivor_modules():
            kept = weights.select() if not weights.selected else weights.kept
            for cell in self.cells():
                if cell.op_weights is weights:
                    for e, edge in enumerate(cell.edges):
                        edge.prune(kept[e].tolist())

    def fresh_weights(self) -> None:
        """Re-initialise every weight module of the supernet and clear the optimizers' state."""
        arch = {id(sub) for cell in self.cells() for m in (cell.op_weights, cell.topology) for sub in m.modules()}
        for module in self.model.modules():
            if id(module) not in arch and hasattr(module, "reset_parameters") and not isinstance(module, DecoupledCell):
                module.reset_parameters()
        live = {id(p) for p in self.model.parameters()}
        for optimizer in self.trainer.optimizers:
            if not getattr(optimizer, "is_arch_optimizer", False):
                for group in optimizer.param_groups:
                    group["params"] = [p for p in group["params"] if id(p) in live]
            optimizer.state.clear()

    def enter_topology_stage(self) -> None:
        """The topology warm-up's restart: prune to the survivors, fresh weights, fresh optimizers."""
        self.prune_supernet()
        self.fresh_weights()

    # ---------------------------------------------------------------- stage switching
    def force_stage(self, stage: str) -> None:
        """Put the module into ``stage`` now, whatever the epoch (benchmarks and tests measure one
        stage this way); the temperatures are those of the stage's first epoch."""
        if stage not in STAGES:
            raise ConfigError(f"unknown DOTS stage {stage!r}: choose one of {', '.join(STAGES)}")
        self._forced_stage = stage
        self.apply_stage(stage)

    def _stage_epoch(self, stage: str) -> int:
        epoch = self.trainer.current_epoch
        return epoch if self.plan.stage(epoch) == stage else self.plan.starts[STAGES.index(stage)]

    def apply_stage(self, stage: str) -> float:
        """Prune on entering the topology stages; set temperatures, what is trainable and the
        architecture optimizer's betas for ``stage``. Returns the temperature T."""
        topology_stage = stage.startswith("topology")
        if topology_stage and not self.pruned:
            self.enter_topology_stage()
        epoch = self._stage_epoch(stage)
        temperature = self.set_temperatures(epoch)
        for weights in self.survivor_modules():
            for p in weights.search_parameters():
                p.requires_grad_(stage == "op_search")
            for p in weights.choice_parameters():
                p.requires_grad_(stage == "topology_search")
        for topology in self.topology_modules():
            if hasattr(topology, "enabled"):
                topology.enabled = topology_stage
            for p in topology.parameters():
                p.requires_grad_(stage == "topology_search")
        arch_optimizer = self.architecture_optimizers()
        if arch_optimizer is not None:
            betas = self.topology_betas if topology_stage else self.arc_betas
            for group in arch_optimizer.optimizer.param_groups:
                group["betas"] = tuple(betas)
        return temperature

    def set_temperatures(self, epoch: int, fraction: float = 0.0) -> float:
        """Set T (topology and survivor choice) and the Gumbel tau for ``fraction`` of ``epoch``; returns T."""
        temperature = self.plan.temperature(epoch, fraction)
        for weights in self.survivor_modules():
            weights.temperature = temperature
            if hasattr(weights.search, "tau"):
                weights.search.tau = self.plan.tau(epoch, fraction)
        for topology in self.topology_modules():
            if hasattr(topology, "temperature"):
                topology.temperature = temperature
        return temperature

    def _anneal_step(self, batch_idx: int) -> None:
        """Per-step annealing: after step ``batch_idx``, the temperatures of the next step (t_min after
        the stage's last step, so that the stage is derived and recorded at t_min)."""
        if not self.plan.per_step or self._forced_stage is not None:
            return
        steps = self.trainer.num_training_batches
        if steps and steps != float("inf"):
            self.set_temperatures(self.trainer.current_epoch, (batch_idx + 1) / steps)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        stage = self.stage
        temperature = self.apply_stage(stage)
        self.log("dots_stage", float(STAGES.index(stage)))
        self.log("dots_temperature", temperature)

    # ---------------------------------------------------------------- steps
    def arch_step_due(self, batch_idx: int) -> bool:
        return self.stage == "op_search"

    def one_level_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Weights and architecture from the same batch, separate optimizers, one backward."""
        arch_optimizer = self.architecture_optimizers()
        arch_optimizer.zero_grad()
        loss = self.arch_loss(batch, batch_idx)
        self.advance_optimization(loss, batch_idx, self.gradient_clip_val)  # weight grads: zero, clip, step
        self.record_arch_gradients()
        arch_optimizer.step()
        arch_optimizer.zero_grad()
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._training_step(batch, batch_idx)
        self._anneal_step(batch_idx)
        return loss

    def _training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        stage = self.stage
        if not stage.startswith("topology"):
            return super().training_step(batch, batch_idx)
        if stage == "topology_warmup":
            halves = [batch["train"]] if self.topology_warmup_data == "train" else [batch["train"], batch["val"]]
            for half in halves:
                loss = self.weight_step(half, batch_idx)
        else:
            for k, half in enumerate((batch["train"], batch["val"])):
                loss = self.one_level_step(half, 2 * batch_idx + k)
        for p in self.arch_parameters():
            p.grad = None
        self.advance_lr_schedulers(batch_idx)
        if batch_idx % self.log_prob_every_n_step == 0:
            self.log_probs(self.export_probs())
        return loss

    # ---------------------------------------------------------------- benchmark hook
    def bench_parts(self) -> dict[str, Any]:
        """Parts of a step for ``nni-decouple bench``: in the topology search ``arch`` is one
        one-level update (weights and topology from one batch) and ``weight`` the pruned supernet's
        weight step alone; in the other stages the bilevel architecture and weight steps."""

        def weight(batch: Any, batch_idx: int) -> torch.Tensor:
            loss = self.weight_step(batch["train"], batch_idx)
            for p in self.arch_parameters():
                p.grad = None
            return loss

        if self.stage == "topology_search":
            return {"arch": lambda batch, i: self.one_level_step(batch["val"], i), "weight": weight}
        return {"arch": lambda batch, i: self.arch_step(batch["val"], i), "weight": weight}
