"""The options every search method shares (:class:`SearchConfig`): plain data, no torch, so that the
CLI builds its parsers from these defaults without importing the search machinery."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..options import finite, need, need_precision, need_seed, need_whole


@dataclass
class SearchConfig:
    """Options every method shares (the CLI's common flags)."""

    method: str = "darts"
    dataset: str = "mnist5k"
    data_root: str | None = None
    epochs: int = 10
    layers: int = 5
    channels: int = 8
    nodes: int = 4
    ops: str | None = None  # None: the method's default op set
    sharing: str | None = None  # None: the method's default
    batch_size: int = 64
    train_limit: int | None = None
    subset: float | None = None  # search on a seeded random fraction of the training images (eDARTS)
    subset_balanced: bool = False  # ... with an equal share per class
    train_portion: float = 0.5
    learning_rate: float = 0.025
    learning_rate_min: float = 0.001
    weight_decay: float = 3e-4
    seed: int = 0
    devices: int = 1
    num_workers: int = 0
    #: The fast path (docs/performance.md): channels-last supernet and the cells' fast forward.
    fast: bool = True
    #: Lightning precision: ``32-true``, ``bf16-mixed`` (CPU and CUDA) or ``16-mixed`` (CUDA only).
    precision: str = "32-true"
    #: ``cpu`` or ``cuda`` (one process per GPU with ``devices``).
    device: str = "cpu"
    method_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> SearchConfig:
        """Refuse values no search can run with, before anything is loaded or written."""
        for option, least in (("epochs", 1), ("batch_size", 1), ("layers", 1), ("channels", 1), ("nodes", 1),
                              ("devices", 1), ("num_workers", 0)):
            need_whole(option.replace("_", "-"), getattr(self, option), least)
        if self.train_limit is not None:
            need_whole("train-limit", self.train_limit, 1)
        need_seed(self.seed)
        need(self.subset is None or (finite(self.subset) and 0 < self.subset <= 1), "subset", self.subset,
             "a fraction in (0, 1]")
        need(finite(self.train_portion) and 0 < self.train_portion < 1, "train-portion", self.train_portion,
             "a fraction in (0, 1)")
        for option, value in (("lr", self.learning_rate), ("lr-min", self.learning_rate_min),
                              ("weight-decay", self.weight_decay)):
            need(finite(value) and value >= 0, option, value, "a finite number >= 0")
        need(self.learning_rate > 0, "lr", self.learning_rate, "positive")
        need_precision(self.precision, self.device)
        return self
