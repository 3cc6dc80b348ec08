"""DOTS end to end: CLI search on MNIST-5k, derived genotype -> network, options, recipes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from nni_decouple.cli import build_parser, main
from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import load_genotype
from nni_decouple.runner.evaluator import SearchModule
from nni_decouple.runner.recipes import apply_recipe, load_recipe
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.search.weights.gumbel import GumbelSoftmaxWeights
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.dots import DOTS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dots") / "run"
    code = main(["search", "dots", "--epochs", "4", "--train-limit", "32", "--batch-size", "16", "--layers", "3",
                 "--channels", "4", "--nodes", "3", "--out", str(out), "--force", "--no-progress"])
    assert code == 0
    return out


def test_cli_search_runs_every_stage_and_derives_pairs_without_none(run_dir: Path) -> None:
    genotype = load_genotype(run_dir / "genotype.json").validate()
    assert set(genotype.cells()) == {"normal", "reduce"}
    for cell in genotype.cells().values():
        assert [len(node) for node in cell.nodes] == [2, 2, 2]
        assert "none" not in cell.ops()
    with open(run_dir / "logs" / "metrics.csv") as f:
        stages = [float(row["dots_stage"]) for row in csv.DictReader(f) if row.get("dots_stage")]
    assert stages == [0.0, 1.0, 2.0, 3.0]  # --epochs 4 scales the published 15/15/20/20 to 1/1/1/1


def test_derived_genotype_builds_into_a_network(run_dir: Path) -> None:
    from nni_decouple.models.network import DartsNetwork

    model = DartsNetwork(load_genotype(run_dir / "genotype.json"), channels=4, layers=3, num_classes=10,
                         in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_stage_epochs_must_add_up(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["search", "dots", "--epochs", "5", "--stage-epochs", "1,1,1,1", "--out", "/tmp/never"])
    assert code == 2
    assert "add up to 4" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--arch-betas", "2,3"), ("--topology-betas", "nan,0.9"),
                                         ("--arch-betas", "0.5")])
def test_adam_betas_are_checked_before_a_search(flag: str, value: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["search", "dots", "--epochs", "4", flag, value, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{flag} must be" in err and repr(value) in err
    assert not out.exists()


def test_method1_gdas_with_any_edges_prunes_to_one_op() -> None:
    strategy = DOTS(op_search="gdas", edges="any", tau_max=5.0)
    net = strategy.mutate_model(CellSpace(ops="darts", channels=4, layers=3, nodes=2, in_chans=1))
    module = strategy.configure_oneshot_module(SearchModule())
    module.set_model(net)
    cell = next(m for m in net.modules() if isinstance(m, DecoupledCell))
    assert isinstance(cell.op_weights.search, GumbelSoftmaxWeights) and cell.op_weights.search.tau == 5.0
    assert [len(cell.topology.combinations(j)) for j in cell.graph.node_ids] == [3, 7]
    module.prune_supernet()
    assert all(len(edge.ops) == 1 and edge.kept != [0] for edge in cell.edges)  # top-1, never none
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert "none" not in cell.derive().ops()


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--edges"):
        DOTS(edges="three")
    with pytest.raises(ConfigError, match="--op-search"):
        DOTS(op_search="snas")
    assert DOTS().survivors == "groups" and DOTS(op_search="darts").survivors == 1


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "imagenet"])
def test_recipes_set_the_published_hyperparameters(dataset: str) -> None:
    path = REPO / "configs" / "search" / f"dots_{dataset}.yaml"
    recipe = load_recipe(path)
    assert recipe["method"] == "dots" and recipe["dataset"] == dataset
    assert (recipe["batch_size"], recipe["learning_rate"], recipe["learning_rate_min"]) == (64, 0.025, 0.001)
    assert (recipe["weight_decay"], recipe["grad_clip"], recipe["channels"], recipe["nodes"]) == (3e-4, 5.0, 16, 4)
    assert (recipe["arch_lr"], recipe["arch_betas"], recipe["arch_weight_decay"]) == (3e-4, "0.5,0.999", 1e-3)
    assert recipe["epochs"] == 70 and recipe["layers"] == (14 if dataset == "imagenet" else 8)
    assert sum(int(e) for e in recipe["stage_epochs"].split(",")) == 70
    parser = build_parser()
    args = parser.parse_args(["search", "dots"])
    apply_recipe(args.subparser, recipe, "dots", str(path))  # every key is a real option
    args = parser.parse_args(["search", "dots", "--data-root", "/data"])
    strategy = args.subparser.get_default("func") and __import__(
        "nni_decouple.strategies", fromlist=["get_method"]).get_method("dots").build(args)
    assert strategy.schedule_options["stage_epochs"] == tuple(int(e) for e in recipe["stage_epochs"].split(","))
