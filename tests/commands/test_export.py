"""``nni-decouple export``: search/train results and genotype files become named timm backbones."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import timm
import torch

from nni_decouple.cli import main
from nni_decouple.models.genotype import load_genotype, save_genotype
from nni_decouple.models.network import DartsNetwork, preset_genotype
from nni_decouple.models.timm_models import registered_exports
from nni_decouple.runner.retrain import save_weights


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NNI_DECOUPLE_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "backbones"


def _train_run(tmp_path: Path) -> tuple[Path, DartsNetwork]:
    """A run directory as ``nni-decouple train`` leaves it: genotype.json with meta.network, model.pth."""
    run = tmp_path / "run"
    network = {"stem": "cifar", "channels": 4, "layers": 5, "num_classes": 10, "in_chans": 1, "input_size": 28,
               "dataset": "mnist5k"}
    genotype = replace(preset_genotype("nd_dots_c10"), meta={"network": network, "method": "dots"})
    save_genotype(genotype, run / "genotype.json")
    model = DartsNetwork(genotype, 4, 5, 10, 1, aux_head=True).eval()
    save_weights(model, run / "model.pth")
    return run, model


def test_export_a_training_run_with_its_weights(tmp_path: Path, home: Path, capsys) -> None:
    run, model = _train_run(tmp_path)
    assert main(["export", str(run), "--name", "test_export_run"]) == 0
    out = capsys.readouterr().out
    assert "nd_test_export_run" in out and "with weights" in out
    assert {p.name for p in home.iterdir()} == {"test_export_run.json", "test_export_run.pth", "test_export_run.md"}
    exported = load_genotype(home / "test_export_run.json")
    entry = exported.meta["models"]["nd_test_export_run"]
    assert entry["in_chans"] == 1 and entry["weights"] == "test_export_run.pth" and exported.meta["method"] == "dots"
    loaded = timm.create_model("nd_test_export_run", pretrained=True).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert "FlopCounterMode" in (home / "test_export_run.md").read_text()


def test_export_never_overwrites_without_force(tmp_path: Path, home: Path, capsys) -> None:
    run, _ = _train_run(tmp_path)
    assert main(["export", str(run), "--name", "test_export_twice"]) == 0
    before = (home / "test_export_twice.json").read_text()
    assert main(["export", str(run), "--name", "test_export_twice", "--channels", "6", "--layers", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--force" in err and len(err.splitlines()) == 1
    assert (home / "test_export_twice.json").read_text() == before
    # --force replaces it; without weights (other shape) the stale weights go too.
    assert main(["export", str(tmp_path / "run" / "genotype.json"), "--name", "test_export_twice",
                 "--channels", "6", "--layers", "3", "--force"]) == 0
    assert not (home / "test_export_twice.pth").exists()
    assert timm.create_model("nd_test_export_twice").plan.layers == 3


def test_export_a_genotype_file_registers_at_import(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "searched.json"
    save_genotype(replace(preset_genotype("nd_darts_v2"), meta={"dataset": "cifar100", "method": "darts"}), path)
    assert main(["export", str(path), "--name", "test_export_file", "--channels", "8", "--layers", "8"]) == 0
    from nni_decouple.models.timm_models import register_exports

    assert "nd_test_export_file" in register_exports()  # what `import nni_decouple` does
    assert registered_exports()["nd_test_export_file"] == home / "test_export_file.json"
    model = timm.create_model("nd_test_export_file")
    assert model.num_classes == 100 and model.pretrained_cfg["input_size"] == (3, 32, 32)


@pytest.mark.parametrize("argv, message", [
    (["export", "darts_v2", "--name", "darts_v2"], "preset"),
    (["export", "darts_v2", "--name", "Bad Name"], "not usable"),
    (["export", "no/such/run", "--name", "x1"], "neither a registered model"),
    (["export", "darts_v2", "--name", "x2", "--weights", "missing.pth"], "do not exist"),
    (["export", "darts_v2", "--name", "x3", "--input-size", "-1"], "input_size must be an integer >= 1, got -1"),
    (["export", "darts_v2", "--name", "x4", "--in-chans", "0"], "in_chans must be an integer >= 1, got 0"),
])
def test_export_bad_input_is_one_line(argv: list[str], message: str, home: Path, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not home.exists() or not any(home.iterdir())


def test_export_refuses_weights_of_another_network(tmp_path: Path, home: Path, capsys) -> None:
    run, _ = _train_run(tmp_path)
    assert main(["export", str(run), "--name", "test_export_mismatch", "--channels", "6"]) == 2
    assert "do not fit this network" in capsys.readouterr().err
    assert not home.exists() or not any(home.iterdir())


@pytest.mark.parametrize("stem, levels", [("cifar", 3), ("imagenet", 4)])
@pytest.mark.parametrize("own_dir", [False, True])
def test_every_line_export_prints_runs_as_printed(stem: str, levels: int, own_dir: bool, tmp_path: Path,
                                                  home: Path, capsys, printed_code) -> None:
    """The usage lines come from the network's own feature_info: out_indices=(1, 2, 3) used to be printed for
    every export, and failed for the three-level CIFAR/MNIST-stem networks."""
    run, _ = _train_run(tmp_path)
    name = f"test_printed_{stem}_{int(own_dir)}"
    argv = ["export", str(run / "genotype.json"), "--name", name, "--stem", stem, "--channels", "4", "--layers", "3",
            "--input-size", "32"] + (["--dir", str(tmp_path / "own")] if own_dir else [])
    assert main(argv) == 0
    code = printed_code(capsys.readouterr().out, "use it (Python):")
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the lines the command printed, run as a user would paste them
    backbone = scope["backbone"].eval()
    assert len(backbone.feature_info.channels()) == min(levels, 3)
    assert backbone.feature_info.reduction()[-1] == (4 if stem == "cifar" else 32)
    features = backbone(torch.randn(1, 1, 32, 32))
    assert [f.shape[1] for f in features] == backbone.feature_info.channels()
    assert scope["model"].eval()(torch.randn(1, 1, 32, 32)).shape == (1, 10)
