"""Sparse architecture updates: the architecture changes only on the configured steps, and the
validation batches of skipped steps are never loaded."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from pytorch_lightning import Callback
from torch.utils.data import Dataset, TensorDataset

from nni_decouple.data import EpochSeededSampler
from nni_decouple.errors import ConfigError
from nni_decouple.runner.evaluator import build_evaluator, build_trainer
from nni_decouple.search.schedules.sparse import LazyBatch, LazyBatches, parse_update_every
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.edarts import EDARTS

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.evaluator.pytorch import DataLoader
    from nni.nas.experiment import NasExperiment
    from nni.nas.experiment.config import NasExperimentConfig


class CountingDataset(Dataset):
    """Random 8x8 images that count how often they are read."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, 8, 8, generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.reads += 1
        return self.x[i], self.y[i]


class ArchRecorder(Callback):
    """Per training step: did any architecture parameter change, and how many val images were read."""

    def __init__(self, val_data: CountingDataset) -> None:
        self.val_data = val_data
        self.changed: list[bool] = []
        self.reads: list[int] = []

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.start = [p.detach().clone() for p in pl_module.arch_parameters()]

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.movement = max(float((p.detach() - s).abs().max())
                            for p, s in zip(pl_module.arch_parameters(), self.start, strict=True))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._before = [p.detach().clone() for p in pl_module.arch_parameters()]
        self._reads = self.val_data.reads

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        after = list(pl_module.arch_parameters())
        self.changed.append(any(not torch.equal(a, b) for a, b in zip(after, self._before, strict=True)))
        self.reads.append(self.val_data.reads - self._reads)


def tiny_search(tmp_path: Path, every: int | str, epochs: int = 2, n: int = 24, batch: int = 4,
                lazy_val: bool = True, **options: object) -> ArchRecorder:
    """6 steps per epoch on 8x8 random images through the NNI experiment, as run_search does."""
    train, val = CountingDataset(n, 0), CountingDataset(n, 1)
    recorder = ArchRecorder(val)
    trainer = build_trainer(None, epochs, progress_bar=False, callbacks=[recorder])
    evaluator = build_evaluator(DataLoader(train, batch_size=batch, shuffle=True),
                                DataLoader(val, batch_size=batch, shuffle=True), trainer, max_epochs=epochs)
    space = CellSpace(ops="SS1", channels=2, layers=3, nodes=2, num_classes=3, in_chans=1)
    strategy = EDARTS(subset=None, arch_update_every=every, lazy_val=lazy_val, **options)
    config = NasExperimentConfig.default(space, evaluator, strategy)
    config.experiment_working_directory = str(tmp_path)
    NasExperiment(space, evaluator, strategy, config).run()
    return recorder


@pytest.mark.parametrize("every", [3, "epoch"])
def test_arch_changes_only_on_configured_steps(tmp_path: Path, every: int | str) -> None:
    recorder = tiny_search(tmp_path, every, arch_batches=1)
    steps = len(recorder.changed)
    assert steps == 12  # 2 epochs x 6 steps
    if every == "epoch":
        due = [step % 6 == 5 for step in range(steps)]
    else:
        due = [(step + 1) % every == 0 for step in range(steps)]
    assert recorder.changed == due
    # Only the due steps load a validation batch (4 images), the others none.
    assert recorder.reads == [4 if d else 0 for d in due]


def test_an_update_averages_arch_batches_validation_batches(tmp_path: Path) -> None:
    recorder = tiny_search(tmp_path, "epoch", epochs=1, arch_batches=3)
    assert recorder.reads == [0] * 5 + [12]  # 3 batches of 4 images, loaded only for the update


def test_epoch_update_moves_the_architecture_as_far_as_darts(tmp_path: Path) -> None:
    """Issue 20, finding 2: one unscaled Adam step per epoch moved every alpha by about lr per epoch,
    a sixth of what DARTS moves with 6 steps per epoch here; the default update is scaled to the
    epoch's steps."""
    darts = tiny_search(tmp_path / "darts", 1, epochs=3)
    edarts = tiny_search(tmp_path / "edarts", "epoch", epochs=3)
    unscaled = tiny_search(tmp_path / "unscaled", "epoch", epochs=3, arch_step_scale=1, arch_batches=1)
    assert edarts.movement >= 0.5 * darts.movement
    assert edarts.movement >= 3 * unscaled.movement


def test_every_step_is_darts(tmp_path: Path) -> None:
    recorder = tiny_search(tmp_path, 1, epochs=1)
    assert recorder.changed == [True] * 6


def test_lazy_batches_cycle_and_count() -> None:
    data = TensorDataset(torch.arange(5))
    lazy = LazyBatches(DataLoader(data, batch_size=2))
    handles = list(lazy)
    assert len(lazy) == 3 and len(handles) == 3 and all(isinstance(h, LazyBatch) for h in handles)
    assert lazy.fetched == 0  # iterating loads nothing
    batches = [handles[0].fetch()[0].tolist() for _ in range(4)]
    assert batches == [[0, 1], [2, 3], [4], [0, 1]]  # starts over when the loader runs out
    assert lazy.fetched == 4


@pytest.mark.parametrize("fetched", [0, 1, 3, 4, 7])
def test_lazy_batches_resume_where_an_uninterrupted_run_goes_on(fetched: int) -> None:
    def loader() -> DataLoader:  # shuffled anew each cycle, by the epoch alone
        return DataLoader(TensorDataset(torch.arange(5)), batch_size=2, sampler=EpochSeededSampler(5, seed=3))

    straight = LazyBatches(loader())
    for _ in range(fetched):
        straight.next_batch()
    resumed = LazyBatches(loader())
    resumed.load_state_dict(straight.state_dict())
    assert resumed.state_dict() == {"fetched": fetched}
    ahead = [[straight.next_batch()[0].tolist(), resumed.next_batch()[0].tolist()] for _ in range(6)]
    assert all(a == b for a, b in ahead), ahead
    assert resumed.fetched == straight.fetched == fetched + 6


@pytest.mark.parametrize("value, expected", [("epoch", "epoch"), ("EPOCH", "epoch"), ("5", 5), (1, 1)])
def test_parse_update_every(value: int | str, expected: int | str) -> None:
    assert parse_update_every(value) == expected


@pytest.mark.parametrize("value", ["0", -1, "often", 2.5])
def test_parse_update_every_rejects(value: object) -> None:
    with pytest.raises(ConfigError, match="arch-update-every"):
        parse_update_every(value)  # type: ignore[arg-type]
