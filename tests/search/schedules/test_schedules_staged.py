"""DOTS' staged schedule: stage boundaries, the published annealing, and what each stage updates."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from nni_decouple.errors import ConfigError
from nni_decouple.runner.evaluator import SearchModule
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.search.schedules.staged import STAGES, StagePlan, scale_stage_epochs
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.dots import DOTS


def test_temperature_follows_the_published_schedule_exactly() -> None:
    plan = StagePlan()  # 15 / 15 / 20 / 20 of 70, T 10 -> 0.02
    for epoch in range(50):
        assert plan.temperature(epoch) == 1.0
    for epoch in range(50, 70):
        assert plan.temperature(epoch) == pytest.approx(10 * (0.02 / 10) ** ((epoch - 50) / 19), rel=1e-12)
    assert plan.temperature(50) == pytest.approx(10.0) and plan.temperature(69) == pytest.approx(0.02)
    # the public code's form: T = 10 * rate ** (e - 50), rate = (0.02 / 10) ** (1 / (70 - 50 - 1))
    rate = (0.02 / 10) ** (1.0 / 19)
    assert plan.temperature(60) == pytest.approx(10 * rate ** 10, rel=1e-12)


def test_stages_switch_at_the_configured_epochs() -> None:
    plan = StagePlan((15, 15, 20, 20))
    assert [plan.stage(e) for e in (0, 14, 15, 29, 30, 49, 50, 69)] == [
        "op_warmup", "op_warmup", "op_search", "op_search", "topology_warmup", "topology_warmup",
        "topology_search", "topology_search"]
    plan = StagePlan((2, 1, 3, 2), anneal="epoch")
    assert [plan.stage(e) for e in range(8)] == ["op_warmup"] * 2 + ["op_search"] + ["topology_warmup"] * 3 + [
        "topology_search"] * 2
    assert plan.temperature(6) == 10.0 and plan.temperature(7) == pytest.approx(0.02)
    assert StagePlan((0, 1, 0, 1)).stage(0) == "op_search"


def test_gumbel_tau_is_linear_over_the_op_search() -> None:
    plan = StagePlan((1, 3, 1, 1), anneal="epoch")
    assert [plan.tau(e) for e in range(4)] == pytest.approx([10.0, 10.0, 5.05, 0.1])


def test_short_topology_search_anneals_per_step_to_t_min() -> None:
    """Issue 20, finding 5: a one-epoch topology search ran (and was derived) at T_max; per step it
    falls from t_max at the stage's first step to t_min after its last."""
    plan = StagePlan((1, 1, 1, 1))
    assert plan.per_step and not StagePlan().per_step  # the published 20 epochs anneal per epoch
    assert plan.temperature(3, 0.0) == pytest.approx(10.0)
    assert plan.temperature(3, 0.5) == pytest.approx(10 * (0.02 / 10) ** 0.5)
    assert plan.temperature(3, 1.0) == pytest.approx(0.02)
    temperatures = [plan.temperature(3, k / 8) for k in range(9)]
    assert all(a > b for a, b in zip(temperatures, temperatures[1:], strict=False))
    assert plan.tau(1, 1.0) == pytest.approx(0.1)  # a one-epoch Gumbel op search anneals too
    assert StagePlan((1, 1, 1, 1), anneal="epoch").temperature(3, 1.0) == 10.0  # the published rule, kept
    with pytest.raises(ConfigError, match="anneal"):
        StagePlan(anneal="sometimes")


def test_the_stage_plan_is_said_in_words() -> None:
    text = StagePlan((2, 2, 2, 2)).describe()
    assert text.startswith("stage plan (8 epochs): op warm-up epochs 1-2, op search epochs 3-4, topology warm-up "
                           "epochs 5-6, topology search epochs 7-8")
    assert "op search epoch 2," in StagePlan((1, 1, 1, 1)).describe()
    assert "10 -> 0.02" in text and "every step" in text
    assert "every epoch" in StagePlan().describe()


def test_stage_epochs_scale_to_short_runs() -> None:
    assert scale_stage_epochs(70) == (15, 15, 20, 20)
    assert scale_stage_epochs(4) == (1, 1, 1, 1)
    assert scale_stage_epochs(2) == (0, 1, 0, 1)
    assert scale_stage_epochs(7) == (1, 2, 2, 2)
    for total in range(2, 120):
        epochs = scale_stage_epochs(total)
        assert sum(epochs) == total and epochs[1] >= 1 and epochs[3] >= 1
    with pytest.raises(ConfigError, match="at least 2 epochs"):
        scale_stage_epochs(1)
    with pytest.raises(ConfigError, match="add up to 4"):
        StagePlan.resolve((1, 1, 1, 1), 3)
    with pytest.warns(UserWarning, match="continue the topology search"):
        assert StagePlan.resolve((1, 1, 1, 1), 5).stage(4) == "topology_search"
    with pytest.raises(ConfigError, match="at least one"):
        StagePlan((1, 0, 1, 1))


class Recorder(pl.Callback):
    """What the module did in each epoch (read at the first batch, after the module's epoch start)."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def snapshot(self, module) -> dict:
        weights = module.survivor_modules()
        return {
            "alpha": torch.cat([w.search.alpha.detach().flatten() for w in weights]).clone(),
            "choice": torch.cat([w.alpha_choice.detach().flatten() for w in weights]).clone(),
            "beta": torch.cat([b.detach() for t in module.topology_modules() for b in t.beta]).clone(),
            "stem": next(module.model.stem.parameters()).detach().clone(),
        }

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == 0:
            cell = next(m for m in module.model.modules() if isinstance(m, DecoupledCell))
            self.epochs.append({
                "stage": module.stage, "ops_per_edge": {len(e.ops) for e in cell.edges},
                "temperature": cell.topology.temperature, "topology_on": cell.edge_weights() is not None,
                "start": self.snapshot(module),
                "weight_params": sum(len(g["params"]) for o in trainer.optimizers
                                     if not getattr(o, "is_arch_optimizer", False) for g in o.param_groups),
                "live_params": len({id(p) for p in module.model.parameters()}
                                   - {id(p) for p in module.arch_parameters()}),
            })

    def on_train_epoch_end(self, trainer, module) -> None:
        self.epochs[-1]["end"] = self.snapshot(module)


def test_each_stage_updates_what_it_should() -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(8, 1, 4, 4), torch.randint(0, 10, (8,)))
    loaders = {"train": DataLoader(data, batch_size=8), "val": DataLoader(data, batch_size=8)}
    strategy = DOTS(stage_epochs=(1, 1, 1, 1))
    net = strategy.mutate_model(CellSpace(ops="darts", channels=4, layers=3, nodes=2, in_chans=1))
    module = strategy.configure_oneshot_module(SearchModule(max_epochs=4))
    module.set_model(net)
    recorder = Recorder()
    trainer = pl.Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder])
    trainer.fit(module, train_dataloaders=loaders)

    epochs = recorder.epochs
    assert [e["stage"] for e in epochs] == list(STAGES)
    changed = [{k: not torch.equal(e["start"][k], e["end"][k]) for k in ("alpha", "choice", "beta")} for e in epochs]
    assert changed[0] == {"alpha": False, "choice": False, "beta": False}  # op warm-up: weights only
    assert changed[1] == {"alpha": True, "choice": False, "beta": False}  # op search: alpha
    assert changed[2] == {"alpha": False, "choice": False, "beta": False}  # topology warm-up: weights only
    assert changed[3] == {"alpha": False, "choice": True, "beta": True}  # topology search: one-level
    assert [e["ops_per_edge"] for e in epochs] == [{8}, {8}, {2}, {2}]
    assert [e["topology_on"] for e in epochs] == [False, False, True, True]
    assert epochs[3]["temperature"] == 10.0
    # the topology warm-up restarts from fresh weights and the optimizer holds only the live ones
    assert not torch.equal(epochs[1]["end"]["stem"], epochs[2]["start"]["stem"])
    assert epochs[2]["weight_params"] == epochs[2]["live_params"] < epochs[1]["weight_params"]
    # one-level: two steps per batch pair (both halves), one Adam step each
    arch = module.architecture_optimizers().optimizer
    steps = {int(s["step"]) for s in arch.state.values()}
    assert steps == {2}  # 1 batch x 2 halves in the only topology-search epoch (state reset at pruning)
    genotype = module.export()
    assert not any(v == "none" for k, v in genotype.items() if "/op_" in k)


class StopAfter(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True  # an interrupted run


def _fit(max_epochs: int, callbacks: list, root, ckpt_path: str | None = None):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(8, 1, 4, 4), torch.randint(0, 10, (8,)))
    loaders = {"train": DataLoader(data, batch_size=8), "val": DataLoader(data, batch_size=8)}
    strategy = DOTS(stage_epochs=(1, 1, 1, 1))
    net = strategy.mutate_model(CellSpace(ops="darts", channels=4, layers=3, nodes=2, in_chans=1))
    module = strategy.configure_oneshot_module(SearchModule(max_epochs=max_epochs))
    module.set_model(net)
    trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks, default_root_dir=str(root),
                         enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks))
    trainer.fit(module, train_dataloaders=loaders, ckpt_path=ckpt_path)
    return module


def test_resume_in_the_topology_stage_restores_the_pruned_supernet(tmp_path) -> None:
    from pytorch_lightning.callbacks import ModelCheckpoint

    checkpoints = ModelCheckpoint(dirpath=str(tmp_path), filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    _fit(4, [checkpoints, StopAfter(2)], tmp_path)  # interrupted after the topology warm-up: pruned, fresh weights
    assert (tmp_path / "epoch=2.ckpt").is_file() and not (tmp_path / "epoch=3.ckpt").exists()
    recorder = Recorder()
    module = _fit(4, [recorder], tmp_path / "resumed", ckpt_path=str(tmp_path / "epoch=2.ckpt"))
    assert [e["stage"] for e in recorder.epochs] == ["topology_search"]
    assert recorder.epochs[0]["ops_per_edge"] == {2}  # restored pruned, not pruned again
    assert recorder.epochs[0]["weight_params"] == recorder.epochs[0]["live_params"]
    start, end = recorder.epochs[0]["start"], recorder.epochs[0]["end"]
    assert not torch.equal(start["beta"], end["beta"]) and torch.equal(start["alpha"], end["alpha"])
    assert module.pruned
