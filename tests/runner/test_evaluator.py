"""The evaluator takes the cosine schedule's length from the trainer (README: "From Python")."""

from __future__ import annotations

import torch
from nni.nas.evaluator.pytorch import DataLoader
from torch.utils.data import TensorDataset

from nni_decouple.runner.evaluator import build_evaluator, build_trainer


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))), batch_size=2)


def test_schedule_length_is_the_trainers():
    evaluator = build_evaluator(_loader(), _loader(), build_trainer(None, 70, progress_bar=False))
    assert evaluator.module.hparams.max_epochs == 70  # was 50: the cosine ended at epoch 50 and the LR climbed again
    given = build_evaluator(_loader(), _loader(), build_trainer(None, 70, progress_bar=False), max_epochs=100)
    assert given.module.hparams.max_epochs == 100
