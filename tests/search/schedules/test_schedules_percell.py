"""D-DARTS' per-cell schedule: every cell steps on the gradient of its own loss, and only that."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nni_decouple.runner.evaluator import SearchModule
from nni_decouple.search.schedules.percell import CosineAfterWarmup, PerCellModule, deactivated, frozen_bn_stats
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.ddarts import DDARTS


def make(layers: int = 3, nodes: int = 1, random_alpha: bool = True, **options) -> PerCellModule:
    space = CellSpace(ops="darts_no_none", channels=4, layers=layers, nodes=nodes, sharing="layer", num_classes=10,
                      in_chans=1)
    strategy = DDARTS(**options)
    training = SearchModule()
    training.set_model(strategy.mutate_model(space))
    module = strategy.configure_oneshot_module(training)
    if random_alpha:
        with torch.no_grad():
            for p in module.arch_parameters():
                p.normal_(0.0, 1.0)
    return module


def batch(n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def weights_of(module: PerCellModule) -> list[nn.Parameter]:
    arch = {id(p) for p in module.arch_parameters()}
    return [p for p in module.training_module.parameters() if id(p) not in arch]


def use_raw_optimizers(module: PerCellModule) -> list[torch.optim.Optimizer]:
    optimizers = module.configure_architecture_optimizers()
    module.architecture_optimizers = lambda: optimizers  # no trainer in unit tests
    return optimizers


def test_each_gradient_is_the_cells_own_loss_gradient_and_the_ablation_term_carries_one() -> None:
    module = make(w01=7.0, wabl=0.5)
    x, y = batch()
    got = module.player_gradients((x, y))
    without_ablation = make(w01=7.0, wabl=0.0, random_alpha=False)
    without_ablation.load_state_dict(module.state_dict())
    base = without_ablation.player_gradients((x, y))

    # Brute force: every L_T^i of Eq. 8 in one graph, differentiated w.r.t. alpha_i only.
    players = module.players()
    loss = module._cross_entropy(x, y)
    ablated = []
    for player in players:
        with deactivated(player.cells, "zero"), frozen_bn_stats(module.training_module):
            ablated.append(module._cross_entropy(x, y))
    mc = [loss - other for other in ablated]
    mean = torch.stack(mc).mean()
    for i, player in enumerate(players):
        l_ab = (mc[i] - mean) / mean.abs()
        total = loss + 7.0 * module.zero_one_loss(player) + 0.5 * l_ab
        (expected,) = torch.autograd.grad(total, player.params, retain_graph=True)
        (expected_ab,) = torch.autograd.grad(l_ab, player.params, retain_graph=True)
        torch.testing.assert_close(got[i][0], expected, rtol=1e-4, atol=1e-6)
        ablation_part = got[i][0] - base[i][0]
        assert float(ablation_part.abs().max()) > 1e-4  # the ablation term moves every cell's alphas
        torch.testing.assert_close(ablation_part, 0.5 * expected_ab, rtol=1e-3, atol=1e-6)
    assert module.last_ablation["mc"] == pytest.approx([float(v.detach()) for v in mc], abs=1e-5)


def test_an_arch_step_of_cell_i_changes_only_cell_i() -> None:
    module = make()
    use_raw_optimizers(module)
    players = module.players()
    alphas = [p.detach().clone() for p in module.arch_parameters()]
    weights = [p.detach().clone() for p in weights_of(module)]
    module.arch_step(batch(), 0, players=[1])
    for k, (p, before) in enumerate(zip(module.arch_parameters(), alphas, strict=True)):
        changed = not torch.equal(p.detach(), before)
        assert changed == (p is players[1].params[0]), f"alpha {k}"
    assert all(torch.equal(p.detach(), w) for p, w in zip(weights_of(module), weights, strict=True))
    assert all(p.grad is None for p in weights_of(module))  # no arch gradient leaks into the weights


def test_every_cell_steps_its_own_adam_on_its_own_gradient() -> None:
    module = make(ablation="exact")
    use_raw_optimizers(module)
    data = batch()
    grads = module.player_gradients(data)
    before = [p.detach().clone() for p in module.arch_parameters()]
    module.arch_step(data, 0)
    lr, wd = module.arc_learning_rate, module.arc_weight_decay
    for player, g, old in zip(module.players(), grads, before, strict=True):
        g = g[0] + wd * old  # Adam's first step: -lr * g / (|g| + eps), g including weight decay
        torch.testing.assert_close(player.params[0].detach() - old, -lr * g / (g.abs() + 1e-8), rtol=1e-4,
                                   atol=1e-7)
    assert all(p.grad is None for p in module.training_module.parameters())


def test_ablated_forwards_do_not_touch_batchnorm_statistics() -> None:
    module = make()
    bns = [m for m in module.training_module.modules() if isinstance(m, nn.BatchNorm2d)]
    start = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    data = batch()
    module.player_gradients(data)
    after_search = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    for m, (mean, var, count) in zip(bns, start, strict=True):
        m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)
    module._cross_entropy(*data)  # the one forward of the full network that DARTS' arch step also does
    for m, (mean, var, count) in zip(bns, after_search, strict=True):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
        assert torch.equal(m.num_batches_tracked, count)


def ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0] * len(values)
    for r, i in enumerate(order):
        out[i] = r
    return out


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1.0 - 6.0 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))


def test_fast_marginal_contributions_rank_agree_with_exact_ones() -> None:
    # Fixture: an 8-cell supernet searched from initialisation for the seeding step and two round-robin cycles
    # (17 architecture and weight steps at D-DARTS' learning rates) on one fixed batch, so that the fast table
    # differs from the exact contributions only by what amortisation loses (entries up to 7 steps old) while the
    # contributions still move fast. The batch-to-batch noise of the contributions, which exact and fast share,
    # is measured in benchmarks/ddarts_ablation.py. (Seeds 0-2 give 0.98, 0.98, 0.95.)
    torch.manual_seed(0)
    module = make(layers=8, ablation="fast", random_alpha=False)
    use_raw_optimizers(module)
    sgd = torch.optim.SGD(weights_of(module), lr=0.005, momentum=0.9, weight_decay=3e-4)
    data = batch(32, seed=3)
    for step in range(17):
        module.arch_step(data, step)
        # One extra forward per step, one player after the other (all of them once to fill the table).
        assert module.last_ablation["measured"] == (list(range(8)) if step == 0 else [(step - 1) % 8])
        if step == 0:
            start = list(module.marginal_contributions)
        sgd.zero_grad()
        module._cross_entropy(*data).backward()
        sgd.step()
        for p in module.arch_parameters():
            p.grad = None
    fast = list(module.marginal_contributions)
    module.ablation = "exact"
    module.player_gradients(data)
    exact = module.marginal_contributions
    assert spearman(fast, exact) >= 0.8, (fast, exact)
    # Not trivial: the contributions moved during the search, a table never refreshed does not rank them.
    assert spearman(start, exact) < 0.5


def test_each_arch_optimizer_gets_a_cosine_schedule_stepped_per_epoch() -> None:
    module = make(layers=4)
    conf = module.configure_optimizers()
    arch = [c for c in conf if getattr(c["optimizer"], "is_arch_optimizer", False)]
    assert len(arch) == len(module.players()) == 4
    for entry in arch:
        sched = entry["lr_scheduler"]
        assert sched["interval"] == "epoch" and isinstance(sched["scheduler"], CosineAfterWarmup)
        assert entry["optimizer"].param_groups[0]["betas"] == (0.9, 0.999)
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=3e-3)
    sched = CosineAfterWarmup(opt, total_epochs=6, warmup=2, eta_min=1e-3)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [3e-3, 3e-3, 3e-3] + [1e-3 + 2e-3 * (1 + math.cos(math.pi * t / 4)) / 2 for t in (1, 2, 3, 4)]
    assert lrs == pytest.approx(expected)
