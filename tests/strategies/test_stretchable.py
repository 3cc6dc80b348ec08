"""Stretchable Cells strategy and CLI method: defaults, no `none`, the N = 9 search, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nni_decouple.cli import main
from nni_decouple.commands.search import add_common_arguments
from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import load_genotype
from nni_decouple.models.network import DartsNetwork
from nni_decouple.runner.recipes import apply_recipe, load_recipe
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.search.schedules import BilevelModule
from nni_decouple.search.schedules.milenas import MiLeNASModule
from nni_decouple.search.topology.input import InputCombinationTopology
from nni_decouple.search.topology.output import OutputTopology, num_topology_parameters
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies import get_method
from nni_decouple.strategies.stretchable import StretchableCells

REPO = Path(__file__).resolve().parents[2]


def _space(ops: str = "skip_connect,avg_pool_3x3,sep_conv_3x3", nodes: int = 3) -> CellSpace:
    return CellSpace(ops=ops, channels=4, layers=3, nodes=nodes, num_classes=3, in_chans=1)


def test_defaults_are_the_papers_method():
    strategy = StretchableCells()
    assert strategy.schedule_cls is MiLeNASModule
    assert strategy.topology == "output_any" and strategy.derive_name == "stretchable"
    assert strategy.topology_options["reg_lambda"] == 10.0
    supernet = strategy.mutate_model(_space())
    cells = [m for m in supernet.modules() if isinstance(m, DecoupledCell)]
    assert all(isinstance(c.topology, OutputTopology) and c.topology.edges == "any" for c in cells)
    assert supernet(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    method = get_method("stretchable")
    assert method.space_defaults["ops"] == "darts_no_none" and method.space_defaults["nodes"] == 6


def test_options_pick_the_axes():
    darts_input = StretchableCells(optimizer="darts", topology="input", edges="any")
    assert darts_input.schedule_cls is BilevelModule and darts_input.topology == "input_any"
    supernet = darts_input.mutate_model(_space())
    cell = next(m for m in supernet.modules() if isinstance(m, DecoupledCell))
    assert isinstance(cell.topology, InputCombinationTopology)
    assert supernet(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    assert StretchableCells(edges="two").topology == "output_pairs"
    with pytest.raises(ConfigError, match="optimizer"):
        StretchableCells(optimizer="adam")
    with pytest.raises(ConfigError, match="topology"):
        StretchableCells(topology="sideways")


def test_none_op_is_rejected():
    with pytest.raises(ConfigError, match="none"):
        StretchableCells().mutate_model(_space(ops="none,skip_connect,sep_conv_3x3"))


def test_cli_rejects_none(tmp_path, capsys):
    code = main(["search", "stretchable", "--ops", "darts", "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    assert "'none'" in capsys.readouterr().err


def test_cli_searches_paper_n9_on_mnist5k(tmp_path):
    """The paper's N = 9 (6 intermediate nodes, the method's default) on the bundled MNIST-5k."""
    out = tmp_path / "run"
    code = main(["search", "stretchable", "--epochs", "1", "--train-limit", "4", "--batch-size", "2",
                 "--layers", "3", "--channels", "2", "--ops", "skip_connect,max_pool_3x3,dil_conv_3x3",
                 "--out", str(out), "--force", "--no-progress"])
    assert code == 0
    genotype = load_genotype(out / "genotype.json")
    assert genotype.meta["nodes"] == 6 and genotype.meta["eval_layers"] == 3
    assert genotype.meta["optimizer"] == "milenas" and genotype.meta["topology"] == "output/any"
    assert genotype.normal.num_nodes == 6 and genotype.reduce.num_nodes == 6
    probs = json.loads((out / "arch_probs.json").read_text())["probs"]
    assert "normal/topology_7" in probs  # merged output-edge weights s(i, j) of the last node's inputs
    net = DartsNetwork(genotype, channels=4, layers=genotype.meta["eval_layers"], num_classes=10, in_chans=1)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    # Its text (what the search prints and `genotype --to text` writes) reads back unchanged: nodes may have
    # one, two or no inputs, which DARTS' two-pairs-per-node text cannot say.
    assert main(["genotype", str(out), "--to", "text", "--out", str(tmp_path / "genotype.txt")]) == 0
    assert load_genotype(tmp_path / "genotype.txt") == genotype


def test_topology_parameters_per_cell_at_n9():
    supernet = StretchableCells().mutate_model(_space(nodes=6))
    topologies = {id(c.topology): c.topology for c in supernet.modules() if isinstance(c, DecoupledCell)}
    assert len(topologies) == 2  # one per cell type (normal, reduce)
    assert all(t.beta.numel() == num_topology_parameters(6) == 191 for t in topologies.values())


@pytest.mark.parametrize("recipe", ["stretchable_cifar10.yaml", "stretchable_cifar10_l12.yaml",
                                    "stretchable_cifar10_l16.yaml", "stretchable_cifar100.yaml",
                                    "stretchable_wo_sc_cifar10.yaml"])
def test_recipes_apply(recipe):
    import argparse

    path = REPO / "configs" / "search" / recipe
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    get_method("stretchable").add_arguments(parser)
    apply_recipe(parser, load_recipe(path), "stretchable", str(path))
    args = parser.parse_args([])
    assert args.epochs == 50 and args.batch_size == 64 and args.reg_lambda == 10.0
    assert args.layers in (8, 12, 16) and args.nodes in (4, 6)
    get_method("stretchable").build(args)  # every recipe builds a strategy
