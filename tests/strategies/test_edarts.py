"""eDARTS strategy and CLI method: defaults, data subset of the loaders, a small MNIST-5k search."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from nni_decouple.cli import main
from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import Genotype
from nni_decouple.models.ops import resolve_ops
from nni_decouple.search.schedules.sparse import LazyBatches, SparseBilevelModule
from nni_decouple.strategies.edarts import DEFAULT_SUBSET, EDARTS

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.evaluator.pytorch import DataLoader


def test_defaults() -> None:
    strategy = EDARTS()
    assert strategy.subset == DEFAULT_SUBSET == 0.1
    assert strategy.arch_update_every == "epoch"
    assert strategy.schedule_cls is SparseBilevelModule
    assert (strategy.weights, strategy.topology, strategy.derive_name) == ("softmax", "none", "top2")
    focused = EDARTS(path="inputs", attention="sep")
    assert (focused.weights, focused.topology, focused.derive_name) == ("softmax_prior", "path", "path")
    assert focused.weights_options == {"prior": {"sep_conv_3x3": 1.0, "sep_conv_5x5": 0.5}}


@pytest.mark.parametrize("kwargs, match", [({"subset": 0.0}, "subset"), ({"arch_update_every": 0}, "update"),
                                           ({"attention": "bogus=1"}, "unknown op")])
def test_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EDARTS(**kwargs)


def test_train_dataloader_subsets_both_halves_and_loads_val_lazily() -> None:
    data = TensorDataset(torch.randn(200, 1, 4, 4), torch.arange(200) % 4)
    train, val = DataLoader(data, batch_size=5, shuffle=True), DataLoader(data, batch_size=5)
    loaders = EDARTS(subset=0.2, balanced=True).train_dataloader(lambda: train, lambda: val)
    assert len(loaders["train"].dataset) == 40 and len(loaders["train"]) == 8
    assert isinstance(loaders["val"], LazyBatches) and len(loaders["val"]) == 8
    assert EDARTS(subset=None, lazy_val=False).train_dataloader(lambda: train, lambda: val) == \
        {"train": train, "val": val}


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_cli_search_on_mnist5k(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["search", "edarts", "--epochs", "2", "--layers", "3", "--channels", "4", "--nodes", "2",
                 "--train-limit", "2000", "--batch-size", "50", "--out", str(out), "--no-progress"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["subset"] == 0.1 and config["method_options"]["arch_update_every"] == "epoch"
    probs = json.loads((out / "arch_probs.json").read_text())
    genotype = Genotype.from_json((out / "genotype.json").read_text())
    assert probs["skip_connections"] == genotype.count("skip_connect")
    # The log holds the derived skip count after every epoch.
    epochs = [r for r in _metrics(out) if r.get("skip_connections/normal")]
    assert [int(r["epoch"]) for r in epochs] == [0, 1]
    assert int(float(epochs[-1]["skip_connections/normal"])) == probs["skip_connections"]["normal"]


def test_cli_split_space_fixed_path_and_attention(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["search", "edarts", "--epochs", "1", "--layers", "3", "--channels", "4", "--nodes", "3",
                 "--ops", "SS3", "--path", "chain", "--attention", "sep", "--arch-update-every", "2",
                 "--subset", "0.05", "--balanced", "--out", str(out), "--no-progress"])
    assert code == 0
    genotype = Genotype.from_json((out / "genotype.json").read_text())
    for cell in genotype.cells().values():
        assert {op for op in cell.ops()} <= set(resolve_ops("SS3"))
        assert [sorted(src for _, src in node) for node in cell.to_dict()["nodes"]] == [[0, 1], [1, 2], [2, 3]]


def test_cli_rejects_a_bad_path_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["search", "edarts", "--nodes", "2", "--path", "0,1", "--out", str(out)]) == 2
    assert "--path" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("recipe", ["edarts_cifar10.yaml", "edarts_cifar100.yaml"])
def test_recipes(recipe: str) -> None:
    from nni_decouple.cli import build_parser
    from nni_decouple.runner.recipes import apply_recipe, load_recipe

    path = Path(__file__).resolve().parents[2] / "configs" / "search" / recipe
    parser = build_parser()
    args = parser.parse_args(["search", "edarts"])
    apply_recipe(args.subparser, load_recipe(path), "edarts", str(path))
    args = parser.parse_args(["search", "edarts"])
    assert (args.subset, args.arch_update_every, args.layers, args.channels) == (0.1, "epoch", 8, 16)
    assert args.dataset == recipe.split("_")[1].removesuffix(".yaml")
