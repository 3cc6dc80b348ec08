"""MiLeNAS: the architecture gradient is lambda_val * grad L_val + lambda_train * grad L_train (+ reg)."""

from __future__ import annotations

import copy
import warnings

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import DataLoader, TensorDataset

from nni_decouple.runner.evaluator import SearchModule
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.search.schedules.milenas import MiLeNASModule
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.stretchable import StretchableCells


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 1, 8, 8, generator=g), torch.randint(0, 3, (6,), generator=g)


def _captured_step(shared_forward: bool, lambda_train: float):
    """Run one real training step; return the supernet before it, the data, and the gradients the
    architecture (Adam) and weight (SGD) optimizers stepped with."""
    space = CellSpace(ops="skip_connect,avg_pool_3x3,sep_conv_3x3", channels=4, layers=3, nodes=3, num_classes=3,
                      in_chans=1)
    strategy = StretchableCells(optimizer="milenas", lambda_train=lambda_train, shared_forward=shared_forward,
                                gradient_clip_val=None)
    supernet = strategy.mutate_model(space)
    cells = [m for m in supernet.modules() if isinstance(m, DecoupledCell)]
    # an invalid topology in the normal cell, so that lambda * r(beta) takes part in the gradient
    cells[0].topology.set_codes({0: (2,), 1: (2,), 2: (4,), 3: (4,), 4: ()}, margin=1.0)
    before = copy.deepcopy(supernet)
    training = SearchModule(learning_rate=0.1, weight_decay=0.0)
    training.set_model(supernet)
    module = strategy.configure_oneshot_module(training)
    assert isinstance(module, MiLeNASModule)

    (xt, yt), (xv, yv) = _batch(1), _batch(2)
    loaders = {"train": DataLoader(TensorDataset(xt, yt), batch_size=6),
               "val": DataLoader(TensorDataset(xv, yv), batch_size=6)}
    captured: dict[str, dict[str, torch.Tensor]] = {"arch": {}, "weight": {}}
    names = {id(p): n for n, p in supernet.named_parameters()}

    def hook(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        kind = "arch" if isinstance(optimizer, torch.optim.Adam) else "weight"
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    captured[kind][names[id(p)]] = p.grad.detach().clone()

    handle = register_optimizer_step_pre_hook(hook)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                 enable_model_summary=False, accelerator="cpu")
            trainer.fit(module, train_dataloaders=loaders)
    finally:
        handle.remove()
    return before, (xt, yt), (xv, yv), captured


def _expected(before: nn.Module, train: tuple, val: tuple, lambda_train: float
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    before.train()
    ce = nn.CrossEntropyLoss()
    cells = [m for m in before.modules() if isinstance(m, DecoupledCell)]
    topologies = list({id(c.topology): c.topology for c in cells}.values())
    reg = sum(t.regularizer() for t in topologies)
    arch = {n: p for n, p in before.named_parameters() if n.endswith((".alpha", ".beta"))}
    weights = {n: p for n, p in before.named_parameters() if n not in arch}
    l_val, l_train = ce(before(val[0]), val[1]), ce(before(train[0]), train[1])
    g_val = torch.autograd.grad(l_val + reg, list(arch.values()), retain_graph=True)
    g_train = torch.autograd.grad(l_train, list(arch.values()) + list(weights.values()))
    n = len(arch)
    mixed = {name: gv + lambda_train * gt for name, gv, gt in zip(arch, g_val, g_train[:n], strict=True)}
    return mixed, dict(zip(weights, g_train[n:], strict=True))


@pytest.mark.parametrize("shared_forward", [True, False])
def test_arch_gradient_is_val_plus_lambda_train(shared_forward):
    lambda_train = 0.5  # not 1, so that a swapped or missing factor shows
    before, train, val, captured = _captured_step(shared_forward, lambda_train)
    expected_arch, expected_weights = _expected(before, train, val, lambda_train)
    assert set(captured["arch"]) == set(expected_arch)
    for name, grad in expected_arch.items():
        assert torch.allclose(captured["arch"][name], grad, atol=1e-6, rtol=1e-4), name
    assert float(expected_arch["cells.0.topology.beta"].abs().sum()) > 0
    if shared_forward:
        # the weight gradient is grad L_train alone: nothing of L_val leaks in
        for name, grad in expected_weights.items():
            assert torch.allclose(captured["weight"][name], grad, atol=1e-6, rtol=1e-4), name
