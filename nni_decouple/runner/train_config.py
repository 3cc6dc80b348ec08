"""DARTS' evaluation recipes for ``nni-decouple train`` (:class:`Recipe`): plain data, no torch, so that
``train --help`` shows every default without importing Lightning."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..options import finite, need, need_whole

#: What ``nni-decouple train`` writes into its run directory (``--force`` replaces these, and only these).
TRAIN_OUTPUTS = ("genotype.json", "results.json", "model.pth", "checkpoints", "logs", "tensorboard")


@dataclass(frozen=True)
class Recipe:
    """DARTS' evaluation recipe (defaults: CIFAR)."""

    epochs: int = 600
    batch_size: int = 96
    learning_rate: float = 0.025
    learning_rate_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    scheduler: str = "cosine"  # "cosine" to learning_rate_min, or "step": times lr_gamma every epoch
    lr_gamma: float = 0.97
    cutout: int = 16  # side of the square cut out of every training image (0: off)
    auxiliary_weight: float = 0.4  # 0: no auxiliary head
    drop_path: float = 0.2  # final drop-path probability, reached linearly over the epochs
    label_smoothing: float = 0.0
    channels: int = 36
    layers: int = 20
    stem: str = "cifar"

    def replace(self, **changes: Any) -> Recipe:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown recipe options: {', '.join(sorted(unknown))}")
        recipe = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        recipe.check()
        return recipe

    def check(self) -> None:
        """Refuse values no training can run with (NaN and infinity included), naming the ``train`` flag."""
        for name in ("epochs", "batch_size", "channels", "layers"):
            need_whole(RECIPE_FLAGS[name], getattr(self, name), 1)
        for name in ("learning_rate", "learning_rate_min", "momentum", "weight_decay", "grad_clip",
                     "auxiliary_weight"):
            value = getattr(self, name)
            need(finite(value) and value >= 0, RECIPE_FLAGS[name], value, "a finite number >= 0")
        need_whole("cutout", self.cutout, 0)
        for name in ("drop_path", "label_smoothing"):
            value = getattr(self, name)
            need(finite(value) and 0 <= value < 1, RECIPE_FLAGS[name], value, "in [0, 1)")
        need(finite(self.lr_gamma) and 0 < self.lr_gamma <= 1, "lr-gamma", self.lr_gamma, "in (0, 1] (a decay)")
        need(self.scheduler in ("cosine", "step"), "scheduler", self.scheduler, "'cosine' or 'step'")


#: The ``train`` flag of each :class:`Recipe` field (the learning rates keep DARTS' short names).
RECIPE_FLAGS: dict[str, str] = {
    f.name: {"learning_rate": "lr", "learning_rate_min": "lr-min"}.get(f.name, f.name.replace("_", "-"))
    for f in dataclasses.fields(Recipe)}


#: DARTS' evaluation recipes: CIFAR (600 epochs, 36 channels, 20 cells) and ImageNet (250 epochs,
#: 48 channels, 14 cells, lr 0.1 decayed by 0.97 per epoch, label smoothing 0.1, no cutout or drop path).
RECIPES: dict[str, Recipe] = {
    "cifar": Recipe(),
    "imagenet": Recipe(epochs=250, batch_size=128, learning_rate=0.1, weight_decay=3e-5, scheduler="step",
                       cutout=0, drop_path=0.0, label_smoothing=0.1, channels=48, layers=14, stem="imagenet"),
}
