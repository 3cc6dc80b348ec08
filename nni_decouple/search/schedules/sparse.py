"""Axis "schedule": sparse architecture updates (eDARTS' "epoch update").

:class:`SparseBilevelModule` is DARTS' first-order bilevel step, except that the architecture
step runs only on every ``k``-th weight step, or once per epoch. The poster reports that this
both cuts the search cost and reduces DARTS' skip-connection bias.

The cost saved is the architecture step's forward and backward pass, and with
:class:`LazyBatches` also the loading (and augmentation) of its validation batch: NNI's DARTS
loaders are a ``{'train', 'val'}`` dict that Lightning combines into one loader fetching a batch
from *both* loaders at every step. Wrapping the val loader in :class:`LazyBatches` makes the
``val`` entry a cheap :class:`LazyBatch` handle; the schedule pulls the real batch only when an
architecture step is due.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler

from ...errors import ConfigError
from . import BilevelModule, register_schedule

ArchUpdateEvery = int | Literal["epoch"]


def parse_update_every(value: int | str) -> ArchUpdateEvery:
    """``'epoch'`` or a positive number of weight steps (``'5'`` from the CLI is 5)."""
    if isinstance(value, str) and value.strip().lower() == "epoch":
        return "epoch"
    try:
        k = int(value)
    except (TypeError, ValueError):
        k = 0
    if k < 1 or (isinstance(value, float) and value != k):
        raise ConfigError(f"--arch-update-every must be 'epoch' or a whole number of weight steps >= 1, got {value!r}")
    return k


class LazyBatch:
    """A handle for the next validation batch; :meth:`fetch` loads it (only then)."""

    __slots__ = ("_source",)

    def __init__(self, source: LazyBatches) -> None:
        self._source = source

    def fetch(self) -> Any:
        return self._source.next_batch()


class LazyBatches:
    """An iterable of ``len(loader)`` :class:`LazyBatch` handles over ``loader``.

    The real batches come from one iterator of ``loader`` that persists across epochs and starts
    over (a new shuffle) when it runs out, so every fetched batch is used and none is loaded for
    a step that skips the architecture update. Lightning does not see the wrapped loader, so under
    DDP the distributed sampler is added here (each rank its own shard, as Lightning would do).
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.fetched = 0  #: real batches loaded so far (for tests and cost accounting)
        self._iterator: Iterator[Any] | None = None
        self._distributed: DataLoader | None = None
        self._cycles = 0
        self._resume_at: int | None = None

    def state_dict(self) -> dict[str, int]:
        return {"fetched": self.fetched if self._resume_at is None else self._resume_at}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Go on after ``state["fetched"]`` batches (applied at the next fetch, when the source is known)."""
        self._resume_at, self._iterator = int(state["fetched"]), None

    def _fast_forward(self, fetched: int) -> None:
        per_cycle = len(self._source())
        self._cycles, position = divmod(fetched, per_cycle) if per_cycle else (0, 0)
        self._iterator = self._restart()
        for _ in range(position):  # batches an uninterrupted run has already used
            next(self._iterator)
        self.fetched = fetched

    def _source(self) -> Any:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self.loader
        if torch.distributed.get_world_size() == 1 or not isinstance(self.loader, DataLoader):
            return self.loader
        if isinstance(self.loader.sampler, DistributedSampler):
            return self.loader
        if self._distributed is None:
            loader = self.loader
            sampler = DistributedSampler(loader.dataset, shuffle=not isinstance(loader.sampler, SequentialSampler),
                                         drop_last=loader.drop_last)
            self._distributed = DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                                           num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                                           pin_memory=loader.pin_memory, drop_last=loader.drop_last)
        return self._distributed

    def __len__(self) -> int:
        return len(self._source())

    def __iter__(self) -> Iterator[LazyBatch]:
        return (LazyBatch(self) for _ in range(len(self)))

    def _restart(self) -> Iterator[Any]:
        source = self._source()
        sampler = getattr(source, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # what Lightning does for the loaders it sees (a new shuffle)
            sampler.set_epoch(self._cycles)
        self._cycles += 1
        return iter(source)

    def next_batch(self) -> Any:
        if self._resume_at is not None:
            self._fast_forward(self._resume_at)
            self._resume_at = None
        if self._iterator is None:
            self._iterator = self._restart()
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._iterator = self._restart()
            batch = next(self._iterator)
        self.fetched += 1
        return batch


def parse_step_scale(value: float | str) -> float | str:
    """``'auto'`` or a positive number (``'4'`` from the CLI is 4.0)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = float("nan")
    if not (scale > 0 and scale < float("inf")):
        raise ConfigError(f"--arch-step-scale must be 'auto' or a number > 0, got {value!r}")
    return scale


@register_schedule("sparse")
class SparseBilevelModule(BilevelModule):
    """First-order bilevel search whose architecture step runs only every ``arch_update_every``
    weight steps (counted over the whole search), or with ``'epoch'`` once per epoch.

    Each update is taken *before* the weight step that ends the period, so it sees weights trained
    on the whole period (with ``'epoch'``: on the last step of each epoch). One Adam step at DARTS'
    learning rate per epoch would move every alpha by about ``lr`` per epoch, ``1/period`` of what
    DARTS moves on the same budget: the search would not happen (measured in docs/edarts.md). So an
    update moves as far as the ``period`` DARTS steps it replaces:

    - ``arch_step_scale``: the update's learning rate is ``scale * lr``; ``'auto'`` (default) is the
      period (weight steps per update), ``1`` the unscaled step of before issue 20;
    - ``arch_batches``: the update's gradient is the mean over this many validation batches (the
      lazy loader fetches them only now), so that one noisy batch does not decide a step that large.

    ``arch_update_every=1`` is DARTS (period 1: scale 1, and one batch).
    """

    def __init__(self, training_module: Any, *, arch_update_every: int | str = "epoch",
                 arch_step_scale: float | str = "auto", arch_batches: int = 4, **kwargs: Any) -> None:
        super().__init__(training_module, **kwargs)
        self.arch_update_every = parse_update_every(arch_update_every)
        self.arch_step_scale = parse_step_scale(arch_step_scale)
        if isinstance(arch_batches, bool) or int(arch_batches) != arch_batches or arch_batches < 1:
            raise ConfigError(f"--arch-batches must be a whole number >= 1, got {arch_batches!r}")
        self.arch_batches = int(arch_batches)

    def _per_epoch(self) -> int:
        per_epoch = self.trainer.num_training_batches
        if per_epoch == float("inf"):
            raise ConfigError("sparse architecture updates count steps per epoch: the train loader needs a length")
        return int(per_epoch)

    def period(self) -> int:
        """Weight steps per architecture update."""
        return self._per_epoch() if self.arch_update_every == "epoch" else int(self.arch_update_every)

    def step_scale(self) -> float:
        """The factor on the architecture learning rate of one update (``'auto'``: the period)."""
        return float(self.period()) if self.arch_step_scale == "auto" else float(self.arch_step_scale)

    def arch_step_due(self, batch_idx: int) -> bool:
        if not super().arch_step_due(batch_idx):
            return False
        per_epoch = self._per_epoch()
        if self.arch_update_every == "epoch":
            return batch_idx == per_epoch - 1
        step = self.trainer.current_epoch * per_epoch + batch_idx
        return (step + 1) % self.arch_update_every == 0

    def _load(self, lazy: LazyBatch) -> Any:
        """The next validation batch, on the device and in the precision (e.g. ``64-true``) of the
        trainer, as Lightning prepares the batches it fetches itself."""
        batch = self.trainer.strategy.batch_to_device(lazy.fetch())
        return self.trainer.precision_plugin.convert_input(batch)

    def arch_step(self, batch: Any, batch_idx: int) -> None:
        if self.period() == 1:  # DARTS
            if isinstance(batch, LazyBatch):
                self._adopt(batch._source)
                batch = self._load(batch)
            return super().arch_step(batch, batch_idx)
        if isinstance(batch, LazyBatch):
            self._adopt(batch._source)
            batches = [self._load(batch) for _ in range(self.arch_batches)]
        else:  # an eager loader gives one batch per step
            batches = [batch]
        optimizer = self.architecture_optimizers()
        optimizer.zero_grad()
        k = len(batches)
        for b in batches:
            loss = self.add_regularizer(self.inner_loss(b, 2 * batch_idx), scale=1.0 / k)
            self.arch_backward(loss / k)
        self.record_arch_gradients()
        groups = getattr(optimizer, "optimizer", optimizer).param_groups
        saved = [g["lr"] for g in groups]
        scale = self.step_scale()
        for g in groups:
            g["lr"] = g["lr"] * scale
        try:
            optimizer.step()
        finally:
            for g, lr in zip(groups, saved, strict=True):
                g["lr"] = lr
        optimizer.zero_grad()

    # ---------------------------------------------------------------- checkpoints
    # The lazy validation loader's position is part of the search state: without it a resumed
    # search would take its next architecture steps on other batches than an uninterrupted one.
    _lazy: LazyBatches | None = None
    _lazy_state: dict[str, int] | None = None

    def _adopt(self, source: LazyBatches) -> None:
        if self._lazy is not source:
            self._lazy = source
            if self._lazy_state is not None:
                source.load_state_dict(self._lazy_state)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        state = self._lazy.state_dict() if self._lazy is not None else self._lazy_state
        checkpoint["lazy_val"] = state or {"fetched": 0}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._lazy_state = checkpoint.get("lazy_val")
        if self._lazy is not None and self._lazy_state is not None:
            self._lazy.load_state_dict(self._lazy_state)
