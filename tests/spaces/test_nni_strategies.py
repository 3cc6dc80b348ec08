"""Every NNI 3.0 strategy that can search a cell space runs on CellSpace, as an NNI user runs it.

One-shot: DARTS, GumbelDARTS, RandomOneShot, Proxyless, ENAS (ours: NNI's with pytorch-lightning 2
batches). Multi-trial on the sequential engine: Random, RegularizedEvolution, TPE (ours: NNI's with
the cell's input choices shown to the tuner as plain choices), every sampled
network trained and ranked by the project's evaluator. Shared (``type``) and per-layer (``layer``)
cells, on 128 MNIST-5k images for one epoch; each result converts with ``Genotype.from_arch`` and
builds into an NNI-free network.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from nni.nas.evaluator.pytorch import DataLoader
from nni.nas.experiment import NasExperiment
from nni.nas.experiment.config import NasExperimentConfig
from nni.nas.strategy import DARTS, GumbelDARTS, Proxyless, RandomOneShot, RegularizedEvolution
from nni.nas.strategy import Random as RandomStrategy

from nni_decouple.data import bilevel_split, build_datasets
from nni_decouple.models.genotype import Genotype
from nni_decouple.models.network import DartsNetwork
from nni_decouple.runner.evaluator import build_evaluator, build_trainer
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.darts import ENAS, TPE

HAS_TIANSHOU = importlib.util.find_spec("tianshou") is not None


@pytest.fixture(scope="module")
def mnist():
    train, _, info = build_datasets("mnist5k", train_limit=128, seed=0)
    weights, arch = bilevel_split(train, 0.5, seed=0)
    return weights, arch, info


def _space(info, sharing: str, ops: str = "darts") -> CellSpace:
    return CellSpace(ops=ops, channels=4, layers=3, nodes=2, sharing=sharing, dataset=info)


def _evaluator(mnist, batch_size: int = 32):
    weights, arch, _ = mnist
    trainer = build_trainer(None, 1, progress_bar=False)
    return build_evaluator(DataLoader(weights, batch_size=batch_size), DataLoader(arch, batch_size=batch_size),
                           trainer)


def _check(arch: dict, info, sharing: str) -> Genotype:
    genotype = Genotype.from_arch(arch).validate()
    assert genotype.per_layer == (sharing == "layer")
    net = DartsNetwork(genotype, channels=4, layers=3, num_classes=info.num_classes, in_chans=info.in_chans).eval()
    assert net(torch.randn(2, info.in_chans, 28, 28)).shape == (2, info.num_classes)
    return genotype


ONE_SHOT = {
    "darts": DARTS,
    "gdarts": GumbelDARTS,
    "random_oneshot": RandomOneShot,
    "proxyless": Proxyless,
    "enas": lambda: ENAS(batches_per_update=1, update_kwargs={"batch_size": 4, "repeat": 1, "update_times": 1}),
}


@pytest.mark.parametrize("sharing", ["type", "layer"])
@pytest.mark.parametrize("name", list(ONE_SHOT))
def test_one_shot_strategy_searches_cell_space(name, sharing, mnist):
    if name == "enas" and not HAS_TIANSHOU:
        pytest.skip("ENAS needs tianshou: pip install 'nni-decouple[enas]'")
    strategy = ONE_SHOT[name]()
    NasExperiment(_space(mnist[2], sharing), _evaluator(mnist), strategy).run()
    _check(strategy.oneshot_module.export(), mnist[2], sharing)
    if name == "enas":  # the controller got a reward (SearchModule's per-step val_acc) for every val batch
        assert strategy.oneshot_module._trajectory_counter == 2


MULTI_TRIAL = {
    "random": lambda: RandomStrategy(dedup=True),
    "regularized_evolution": lambda: RegularizedEvolution(population_size=2, sample_size=1),
    "tpe": TPE,  # ours: NNI's TPE cannot read a cell's input choices (see strategies/darts.py)
}


@pytest.mark.parametrize("sharing", ["type", "layer"])
@pytest.mark.parametrize("name", list(MULTI_TRIAL))
def test_multi_trial_strategy_searches_cell_space(name, sharing, mnist):
    config = NasExperimentConfig("sequential", "simplified", max_trial_number=2)
    space = CellSpace(ops="darts_no_none", channels=4, layers=3, nodes=2, sharing=sharing, dataset=mnist[2])
    experiment = NasExperiment(space, _evaluator(mnist, batch_size=64), MULTI_TRIAL[name](), config)
    experiment.run()
    # every trial was trained and ranked by the accuracy SearchModule reported
    trials = list(experiment.strategy.list_models(sort=True, limit=None))
    assert len(trials) == 2
    assert all(0.0 <= t.metric <= 1.0 for t in trials)
    (best,) = experiment.export_top_models(top_k=1, formatter="dict")
    _check(best, mnist[2], sharing)
