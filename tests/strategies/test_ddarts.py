"""D-DARTS through the CLI: small MNIST-5k searches from scratch and from ResNet-18, recipes, errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from nni_decouple.cli import main
from nni_decouple.commands.search import add_common_arguments
from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import load_genotype
from nni_decouple.models.ops import S_O_OPS
from nni_decouple.runner.recipes import apply_recipe, load_recipe
from nni_decouple.strategies import get_method
from nni_decouple.strategies.ddarts import DDARTS

REPO = Path(__file__).resolve().parents[2]
TINY = ["--train-limit", "32", "--batch-size", "16", "--channels", "4", "--no-progress", "--force"]


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def test_search_from_scratch(tmp_path: Path) -> None:
    out = tmp_path / "scratch"
    rc = main(["search", "ddarts", "--epochs", "1", "--layers", "3", "--nodes", "2", "--ablation", "fast",
               "--out", str(out), *TINY])
    assert rc == 0
    genotype = load_genotype(out)
    assert genotype.per_layer and len(genotype.layers) == 3 and genotype.reductions == (1, 2)
    ckpt = checkpoint(out)
    # SGD for the weights + one Adam per cell, each Adam with its own cosine schedule stepped once per epoch.
    assert len(ckpt["optimizer_states"]) == 1 + 3
    arch_schedulers = [s for s in ckpt["lr_schedulers"] if "warmup" in s]
    assert len(arch_schedulers) == 3 and all(s["last_epoch"] == 1 for s in arch_schedulers)
    assert ckpt["ddarts"]["marginal_contributions"] is not None
    metrics = (out / "logs" / "metrics.csv").read_text()
    assert "arch/ablation_loss/reduce_1" in metrics


def test_search_from_resnet18(tmp_path: Path) -> None:
    out = tmp_path / "r18"
    rc = main(["search", "ddarts", "--start", "resnet18", "--warmup-epochs", "1", "--epochs", "2",
               "--out", str(out), *TINY])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["layers"], config["nodes"], config["ops"]) == (4, 4, "s_o")
    genotype = load_genotype(out)
    assert len(genotype.layers) == 4 and genotype.reductions == (1, 2, 3)
    assert set(op for cell in genotype.layers for op in cell.ops()) <= set(S_O_OPS)
    assert len({cell for cell in genotype.layers}) == 1  # identical stages share alphas, so they derive alike
    assert len(checkpoint(out)["optimizer_states"]) == 1 + 1


def test_start_refuses_an_explicit_other_layout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "ddarts", "--start", "resnet18", "--layers", "6", "--out", "/nonexistent"]) == 2
    assert "--start resnet18 fixes --layers 4" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["ddarts_cifar10.yaml", "ddarts_cifar100.yaml"])
def test_recipes_hold_the_published_settings(name: str) -> None:
    recipe = load_recipe(REPO / "configs" / "search" / name)
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    get_method("ddarts").add_arguments(parser)
    apply_recipe(parser, recipe, "ddarts", name)
    args = parser.parse_args([])
    assert (args.epochs, args.batch_size, args.channels, args.layers, args.nodes) == (50, 72, 32, 8, 4)
    assert (args.learning_rate, args.learning_rate_min, args.threshold) == (0.005, 0.001, 0.85)
    assert (args.w01, args.wabl, args.arch_lr) == (7.0, 0.5, 0.003)


def test_defaults_and_bad_options() -> None:
    strategy = DDARTS()
    assert strategy.schedule_options["ablation"] == "exact" and strategy.warmup_epochs == 0
    assert DDARTS(start="resnet50").warmup_epochs == 5
    for bad in ({"ablation": "approx"}, {"derive": "top2"}, {"deactivate": "random"}, {"start": "vgg"}):
        with pytest.raises(ConfigError):
            DDARTS(**bad)


def test_a_shared_cell_space_is_refused() -> None:
    """Issue 20, finding 6: D-DARTS searches one cell per layer, each with its own optimizer; a
    CellSpace(sharing='type') ran silently. Refused in one line, by the compose presets' rule."""
    from nni_decouple.spaces import CellSpace

    space = CellSpace(ops="darts_no_none", channels=4, layers=3, nodes=2, sharing="type", num_classes=2)
    with pytest.raises(ConfigError, match="D-DARTS .*sharing='layer'.*sharing='type'") as error:
        DDARTS().mutate_model(space)
    assert "\n" not in str(error.value)
