"""The cell space: NNI's own DARTS and GumbelDARTS search it unchanged."""

from __future__ import annotations

import pytest
import torch
from nni.nas.evaluator.pytorch import DataLoader
from nni.nas.experiment import NasExperiment
from nni.nas.strategy import DARTS, GumbelDARTS
from torch.utils.data import TensorDataset

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
