"""The cell space: NNI's own DARTS and GumbelDARTS search it unchanged."""

from __future__ import annotations

import pytest
import torch
from nni.nas.evaluator.pytorch import DataLoader
from nni.nas.experiment import NasExperiment
from nni.nas.strategy import DARTS, GumbelDARTS, Proxyless
from torch.utils.data import TensorDataset

from nni_decouple.data import DatasetInfo
from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import Genotype
from nni_decouple.runner.evaluator import build_evaluator, build_trainer
from nni_decouple.spaces import CellSpace


def tiny_space(**kwargs) -> CellSpace:
    return CellSpace(**{"ops": "darts_no_none", "channels": 4, "layers": 3, "nodes": 2, "in_chans": 1, **kwargs})


@pytest.mark.parametrize("stem, size", [("cifar", 8), ("imagenet", 32)])
def test_space_forward(stem, size):
    space = tiny_space(stem=stem)
    assert space(torch.randn(2, 1, size, size)).shape == (2, 10)


def test_labels_decide_sharing():
    shared = {c.label for c in tiny_space(layers=6).cells}
    per_layer = [c.label for c in tiny_space(layers=6, sharing="layer").cells]
    assert shared == {"normal", "reduce"}
    assert per_layer == ["normal_0", "normal_1", "reduce_2", "normal_3", "reduce_4", "normal_5"]


@pytest.mark.parametrize("strategy_cls", [DARTS, GumbelDARTS])
@pytest.mark.parametrize("sharing", ["type", "layer"])
def test_nni_strategies_search_the_space(strategy_cls, sharing):
    data = TensorDataset(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    loader = DataLoader(data, batch_size=8)
    evaluator = build_evaluator(loader, loader, build_trainer(None, 1, progress_bar=False), max_epochs=1)
    strategy = strategy_cls()
    space = tiny_space(sharing=sharing)
    NasExperiment(space, evaluator, strategy).run()
    arch = strategy.oneshot_module.export()
    genotype = Genotype.from_arch(arch).validate()
    assert genotype.per_layer == (sharing == "layer")
    assert all(len(node) == 2 for cell in genotype.cells().values() for node in cell.nodes)
    # the exported dict freezes a fresh space into a runnable network
    frozen = tiny_space(sharing=sharing).freeze(arch)
    assert frozen(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("kwargs, message", [
    ({"ops": "sep_conv_9x9"}, "unknown op"),
    ({"sharing": "cell"}, "unknown sharing"),
    ({"channels": 3}, "even"),
    ({"layers": 2}, "at least 3 layers"),
    ({"nodes": 0}, "nodes must be"),
    ({"stem": "tiny"}, "unknown stem"),
])
def test_bad_space_options(kwargs, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        tiny_space(**kwargs)


@pytest.mark.parametrize("sharing", ["type", "layer"])
@pytest.mark.parametrize("stem, size", [("cifar", 8), ("imagenet", 32)])
def test_proxyless_builds_every_op_for_the_input_it_reads(stem, size, sharing):
    """NNI builds the mutable cell's ops before any input is chosen (input_index=None). Proxyless runs those
    ops as built: in a reduction cell an op reading an intermediate node downsampled twice, and the node sum
    (``stack expects each tensor to be equal size``) or the cell's concatenation (``Sizes of tensors must
    match``) failed. Every node here reads the latest node it can."""
    space = tiny_space(stem=stem, sharing=sharing, nodes=3)
    Proxyless().mutate_model(space)
    memo = {}
    for label, mutable in space.simplify().items():
        memo[label] = [max(mutable.values)] if "/input_" in label else mutable.values[-1]
    for module in space.modules():
        if hasattr(module, "resample") and module is not space:
            module.resample(memo)
    assert space(torch.randn(2, 1, size, size)).shape == (2, 10)


def test_dataset_gives_channels_and_classes():
    info = DatasetInfo("gray7", num_classes=7, in_chans=1, image_size=8)
    space = CellSpace(ops="darts_no_none", channels=4, layers=3, nodes=2, dataset=info)
    assert space(torch.randn(2, 1, 8, 8)).shape == (2, 7)
    with pytest.raises(ConfigError, match="in_chans=3 contradicts dataset 'gray7'"):
        CellSpace(channels=4, layers=3, nodes=2, in_chans=3, dataset=info)
    with pytest.raises(ConfigError, match="DatasetInfo that build_datasets returns"):
        CellSpace(channels=4, layers=3, nodes=2, dataset="mnist5k")
