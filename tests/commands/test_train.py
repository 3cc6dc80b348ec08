"""``nni-decouple train``: a tiny DARTS-recipe run on the bundled MNIST-5k, and its checkpoint in timm."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import timm
import torch

from nni_decouple.cli import main
from nni_decouple.data import build_datasets
from nni_decouple.errors import CheckpointError
from nni_decouple.models.genotype import load_genotype
from nni_decouple.models.network import DartsNetwork
from nni_decouple.runner.retrain import RECIPES, RetrainModule, check_checkpoint_fits, cutout

TINY = ["--dataset", "mnist5k", "--train-limit", "1500", "--epochs", "3", "--batch-size", "32", "--lr", "0.05",
        "--channels", "8", "--layers", "5", "--cutout", "8", "--drop-path", "0.1", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory; what the command printed is beside it, in printed.txt."""
    out = tmp_path_factory.mktemp("train") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "darts_v2", *TINY, "--out", str(out)]) == 0
    (out.parent / "printed.txt").write_text(printed.getvalue())
    return out


def test_train_on_mnist5k_beats_chance_by_far(trained: Path) -> None:
    results = json.loads((trained / "results.json").read_text())
    assert results["val_acc"] > 0.5  # chance is 0.1
    assert results["recipe"]["auxiliary_weight"] == 0.4 and results["recipe"]["weight_decay"] == 3e-4  # DARTS
    for path in ("model.pth", "genotype.json", "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (trained / path).is_file(), path
    assert any((trained / "tensorboard").iterdir())


def test_checkpoint_loads_through_timm_with_identical_outputs(trained: Path) -> None:
    network = json.loads((trained / "genotype.json").read_text())["meta"]["network"]
    assert network == {"stem": "cifar", "channels": 8, "layers": 5, "num_classes": 10, "in_chans": 1,
                       "input_size": 28, "dataset": "mnist5k"}
    reference = DartsNetwork(trained, 8, 5, 10, 1).eval()  # the run directory's genotype
    state = torch.load(trained / "model.pth", weights_only=True)["state_dict"]
    reference.load_state_dict(state)
    _, test_set, _ = build_datasets("mnist5k")
    x = test_set.tensors[0][:16]
    for file in ("model.pth", "checkpoints/last.ckpt"):  # the weights, and Lightning's checkpoint
        model = timm.create_model("nd_darts_v2", pretrained=True, num_classes=10, in_chans=1, channels=8, layers=5,
                                  pretrained_cfg_overlay=dict(file=str(trained / file), num_classes=10,
                                                              input_size=(1, 28, 28))).eval()
        with torch.no_grad():
            assert torch.equal(model(x), reference(x)), file


def test_the_line_train_prints_loads_the_weights_as_trained(trained: Path, printed_code) -> None:
    """Runnable as printed (it used to lack its imports), and its cfg says how the weights were trained."""
    code = printed_code((trained.parent / "printed.txt").read_text(), "load it with timm (Python):")
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the lines the command printed, run as a user would paste them
    model = scope["model"].eval()
    _, test_set, info = build_datasets("mnist5k")
    assert model.pretrained_cfg["mean"] == tuple(round(m, 4) for m in info.mean)
    assert model.pretrained_cfg["std"] == tuple(round(s, 4) for s in info.std)
    reference = DartsNetwork(trained, 8, 5, 10, 1).eval()
    reference.load_state_dict(torch.load(trained / "model.pth", weights_only=True)["state_dict"])
    x = test_set.tensors[0][:4]
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_train_never_overwrites_and_exports(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys) -> None:
    assert main(["train", "darts_v2", *TINY, "--out", str(trained)]) == 2  # an existing run is never overwritten
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setenv("NNI_DECOUPLE_HOME", str(tmp_path))
    assert main(["export", str(trained), "--name", "test_trained_mnist"]) == 0
    model = timm.create_model("nd_test_trained_mnist", pretrained=True).eval()
    reference = timm.create_model("nd_darts_v2", pretrained=True, num_classes=10, in_chans=1, channels=8, layers=5,
                                  pretrained_cfg_overlay=dict(file=str(trained / "model.pth"))).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    # The export's cfg normalises as training did: MNIST-5k's own statistics, not mean 0 / std 1.
    info = build_datasets("mnist5k")[2]
    assert model.pretrained_cfg["mean"] == pytest.approx(info.mean, abs=1e-4) and info.mean[0] > 0.1
    assert model.pretrained_cfg["std"] == pytest.approx(info.std, abs=1e-4) and info.std[0] < 0.5


def test_resume_refuses_another_training_and_a_broken_checkpoint(trained: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = (run / "genotype.json").read_bytes()
    for argv, message in ((["train", "dots_c10", *TINY], "trained with another architecture"),
                          (["train", "darts_v2", *TINY, "--channels", "16"], "trained with another network"),
                          (["train", "darts_v2", *TINY, "--seed", "3"], "trained with another seed")):
        assert main([*argv, "--out", str(run), "--resume"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    assert main(["train", "darts_v2", *TINY, "--out", str(run), "--resume"]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert (run / "genotype.json").read_bytes() == before  # nothing of the run was overwritten


def test_a_checkpoint_of_another_network_is_refused_before_loading(tmp_path: Path) -> None:
    def module(channels: int) -> RetrainModule:
        genotype = load_genotype(Path(__file__).resolve().parents[2] / "backbones" / "darts_v2.json")
        return RetrainModule(DartsNetwork(genotype, channels, 3, 10, 1), RECIPES["cifar"])

    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": module(8).state_dict()}, ckpt)
    check_checkpoint_fits(ckpt, module(8))  # its own network fits
    with pytest.raises(CheckpointError, match="holds another network"):
        check_checkpoint_fits(ckpt, module(16))


@pytest.mark.parametrize("argv, message", [
    (["train", "no_such_arch"], "neither a registered model"),
    (["train", "darts_v2", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "darts_v2", "--dataset", "cifar10", "--data-root", "/no/such/dir"], "does not exist"),
    (["train", "darts_v2", "--channels", "7"], "channels must be even"),
    (["train", "darts_v2", "--lr", "-1"], "--lr must be a finite number >= 0, got -1.0"),
    (["train", "darts_v2", "--lr", "nan"], "--lr must be a finite number >= 0, got nan"),
    (["train", "darts_v2", "--lr-gamma", "0"], "--lr-gamma must be in (0, 1]"),
    (["train", "darts_v2", "--drop-path", "inf"], "--drop-path must be in [0, 1), got inf"),
    (["train", "darts_v2", "--devices", "0"], "--devices must be at least 1"),
    (["train", "darts_v2", "--num-workers", "-1"], "--num-workers must be at least 0"),
    (["train", "darts_v2", "--seed", "-1"], "--seed must be a whole number in 0..2**32-1"),
])
def test_train_bad_input_is_one_line_and_leaves_nothing(argv: list[str], message: str, tmp_path: Path,
                                                        capsys) -> None:
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_recipe_errors_name_flags_that_exist() -> None:
    """Every Recipe field is named in errors by a flag ``train`` has (the learning rates: --lr, --lr-min)."""
    from nni_decouple.cli import build_parser
    from nni_decouple.runner.retrain import RECIPE_FLAGS

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {option for action in train._actions for option in action.option_strings}
    assert {f"--{flag}" for flag in RECIPE_FLAGS.values()} <= flags
    assert (RECIPE_FLAGS["learning_rate"], RECIPE_FLAGS["learning_rate_min"]) == ("lr", "lr-min")


def test_recipes_are_darts() -> None:
    cifar, imagenet = RECIPES["cifar"], RECIPES["imagenet"]
    assert (cifar.epochs, cifar.batch_size, cifar.learning_rate, cifar.weight_decay, cifar.cutout,
            cifar.auxiliary_weight, cifar.drop_path, cifar.channels, cifar.layers) == (
        600, 96, 0.025, 3e-4, 16, 0.4, 0.2, 36, 20)
    assert (imagenet.layers, imagenet.channels, imagenet.label_smoothing, imagenet.stem) == (14, 48, 0.1, "imagenet")


def test_cutout_zeroes_one_square_per_image() -> None:
    x = torch.ones(4, 1, 28, 28)
    y = cutout(x, 8, torch.Generator().manual_seed(0))
    zeros = (y == 0).sum(dim=(1, 2, 3))
    assert (zeros > 0).all() and (zeros <= 64).all()
    assert torch.equal(cutout(x, 0), x)
