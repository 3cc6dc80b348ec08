"""DNAS end to end: CLI search on MNIST-5k, per-layer genotype, timm network, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nni_decouple.cli import main
from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import load_genotype
from nni_decouple.runner.recipes import load_recipe
from nni_decouple.search.edges.partial import PartialChannelEdge
from nni_decouple.strategies import get_method
from nni_decouple.strategies.dnas import DNAS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dnas") / "run"
    code = main(["search", "dnas", "--epochs", "1", "--train-limit", "32", "--batch-size", "16", "--layers", "3",
                 "--channels", "8", "--nodes", "2", "--out", str(out), "--force", "--no-progress"])
    assert code == 0
    return out


def test_cli_search_derives_one_cell_per_layer(run_dir: Path) -> None:
    genotype = load_genotype(run_dir / "genotype.json")
    assert genotype.per_layer and len(genotype.layers) == 3
    assert genotype.reductions == (1, 2)
    assert set(genotype.cells()) == {"normal_0", "reduce_1", "reduce_2"}
    for cell in genotype.layers:
        assert [len(node) for node in cell.nodes] == [2, 2]  # DARTS' top-2 on psi
        assert "none" not in cell.ops()
    saved = json.loads((run_dir / "arch_probs.json").read_text())
    assert saved["method"] == "dnas" and set(saved["skip_connections"]) == set(genotype.cells())
    # export_probs writes psi per layer and edge
    assert {key.split("/")[0] for key in saved["probs"]} == set(genotype.cells())


def test_derived_network_is_a_timm_model(run_dir: Path) -> None:
    import timm

    from nni_decouple.models.timm_models import register_genotype

    genotype = load_genotype(run_dir / "genotype.json")
    name = register_genotype("test_dnas_search", genotype, channels=8, num_classes=10, in_chans=1, input_size=28,
                             replace=True)
    model = timm.create_model(name).train()
    assert len(model.cells) == 3  # the search depth: every layer is its own cell
    x = torch.randn(2, 1, 28, 28)
    out = model(x)
    out.mean().backward()
    assert out.shape == (2, 10)
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
        model.reset_classifier(5)
        assert model(x).shape == (2, 5) and model.get_classifier().out_features == 5
        backbone = timm.create_model(name, features_only=True).eval()
        outs = backbone(x)
    assert [o.shape[1] for o in outs] == backbone.feature_info.channels()
    assert [28 // o.shape[-1] for o in outs] == backbone.feature_info.reduction() == [1, 2, 4]


def test_strategy_defaults_follow_the_paper() -> None:
    strategy = DNAS()
    assert strategy.weights == "factorised" and strategy.derive_name == "top2"
    assert strategy.weights_options["w01"] == 10.0 and strategy.topology == "none"
    assert strategy.partial_k == 4 and strategy.skip_drop == 0.2
    assert strategy.edge_factory.func is PartialChannelEdge
    assert strategy.edge_factory.keywords == {"k": 4, "skip_drop": 0.2}
    assert get_method("dnas").space_defaults == {"ops": "darts_no_none", "sharing": "layer"}
    baseline = DNAS(weights="unfactorised", partial_k=1, edge_norm=True)
    assert baseline.weights == "softmax" and baseline.topology == "edge_norm"


def test_bad_options_fail_before_search() -> None:
    with pytest.raises(ConfigError, match="beta_scope"):
        DNAS(beta_scope="layer")
    with pytest.raises(ConfigError, match="proportion"):
        DNAS(partial_k=0)
    with pytest.raises(ConfigError, match="unknown op-weight"):
        DNAS(weights="nonsense")


def test_recipes_carry_the_published_settings() -> None:
    c10 = load_recipe(REPO / "configs" / "search" / "dnas_cifar10.yaml")
    c100 = load_recipe(REPO / "configs" / "search" / "dnas_cifar100.yaml")
    assert c10["method"] == c100["method"] == "dnas"
    assert (c10["channels"], c10["skip_drop"], c10["partial_k"], c10["w01"]) == (16, 0.2, 4, 10.0)
    assert (c100["dataset"], c100["layers"], c100["batch_size"], c100["channels"]) == ("cifar100", 14, 96, 16)
    assert c10["sharing"] == "layer" and c10["weights"] == "factorised"


def test_recipe_keys_are_cli_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An unknown key or value would fail here; --epochs 0 stops the run before any data is read.
    code = main(["search", "dnas", "--recipe", str(REPO / "configs" / "search" / "dnas_cifar100.yaml"),
                 "--epochs", "0", "--out", str(tmp_path / "x")])
    assert code == 2 and "--epochs must be at least 1" in capsys.readouterr().err


def test_a_shared_cell_space_is_refused() -> None:
    """Issue 20, finding 6: DNAS is a global search (one cell per layer); a CellSpace(sharing='type')
    ran silently with two weight modules. The compose presets' rule refuses it in one line."""
    from nni_decouple.spaces import CellSpace

    space = CellSpace(ops="darts_no_none", channels=8, layers=3, nodes=2, sharing="type", in_chans=1)
    with pytest.raises(ConfigError, match="DNAS .*sharing='layer'.*sharing='type'") as error:
        DNAS().mutate_model(space)
    assert "\n" not in str(error.value)
