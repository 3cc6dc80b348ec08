"""D-DARTS' marginal contributions: how well the ``fast`` table ranks cells, and what each way costs.

One 8-cell supernet (D-DARTS' space, sigmoid weights) on MNIST-5k, its weights first trained for
``--warm`` steps, is searched with ``--ablation fast`` for ``--steps`` steps at D-DARTS' learning
rates on random batches. At every step the exact contributions are also computed (not used by the
search) on that step's batch and on a second random batch. Reported (medians over the steps):

- ``fast_vs_exact``: Spearman between the fast table (entries up to n - 1 steps old, each from
  its own batch) and the exact contributions on this step's batch;
- ``exact_vs_exact``: Spearman between exact contributions on two different batches at the same
  weights: the batch noise every single-batch measurement has, the ceiling for any estimator;
- ``fast_vs_exact_big``: at the end, the fast table against exact contributions on ``--big`` images;
- time per architecture step of ``player_gradients`` with ``exact`` and ``fast``, and of one
  forward + backward of the supernet (the work of a DARTS architecture step), same batch and threads.

Whole search steps against NNI's DARTS are measured by the harness:
``nni-decouple bench --methods ddarts --layers 8 --channels 16 --batch-size 32 --tag target``.

    python benchmarks/ddarts_ablation.py --out benchmarks/results/ddarts_ablation.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
warnings.filterwarnings("ignore", message=".*threshold.*", category=UserWarning)

from nni_decouple.data import build_datasets  # noqa: E402
from nni_decouple.runner.evaluator import SearchModule  # noqa: E402
from nni_decouple.search.schedules.percell import PerCellModule  # noqa: E402
from nni_decouple.spaces import CellSpace  # noqa: E402
from nni_decouple.strategies.ddarts import DDARTS  # noqa: E402


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(v: list[float]) -> list[int]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        out = [0] * len(v)
        for r, i in enumerate(order):
            out[i] = r
        return out

    ra, rb, n = ranks(a), ranks(b), len(a)
    return 1.0 - 6.0 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))


def build(args: argparse.Namespace, num_classes: int, in_chans: int) -> PerCellModule:
    space = CellSpace(ops="darts_no_none", channels=args.channels, layers=args.layers, nodes=args.nodes,
                      sharing="layer", num_classes=num_classes, in_chans=in_chans)
    strategy = DDARTS(ablation="fast")
    training = SearchModule()
    training.set_model(strategy.mutate_model(space))
    module = strategy.configure_oneshot_module(training)
    optimizers = module.configure_architecture_optimizers()
    module.architecture_optimizers = lambda: optimizers  # stepped by hand, no trainer
    return module


def exact_contributions(module: PerCellModule, data: tuple[torch.Tensor, torch.Tensor]) -> tuple[list[float], float]:
    saved = (module.ablation, module.marginal_contributions, module._next_player)
    module.ablation = "exact"
    started = time.perf_counter()
    module.player_gradients(data)
    seconds = time.perf_counter() - started
    mc = list(module.marginal_contributions)
    module.ablation, module.marginal_contributions, module._next_player = saved
    return mc, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--big", type=int, default=512, help="images of the final exact measurement")
    parser.add_argument("--warm", type=int, default=40, help="weight-only steps before the search")
    parser.add_argument("--steps", type=int, default=24, help="search steps (3 round-robin cycles of 8 cells)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    load_before = os.getloadavg()

    train, _, info = build_datasets("mnist5k", None, None, args.seed)
    images = torch.stack([train[i][0] for i in range(len(train))])
    labels = torch.tensor([int(train[i][1]) for i in range(len(train))])
    g = torch.Generator().manual_seed(args.seed)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(images), (n,), generator=g)
        return images[idx], labels[idx]

    module = build(args, info.num_classes, info.in_chans)
    arch = {id(p) for p in module.arch_parameters()}
    weights = [p for p in module.training_module.parameters() if id(p) not in arch]
    sgd = torch.optim.SGD(weights, lr=0.005, momentum=0.9, weight_decay=3e-4)  # D-DARTS' search lr

    def weight_step() -> float:
        started = time.perf_counter()
        sgd.zero_grad()
        module._cross_entropy(*sample(args.batch_size)).backward()
        sgd.step()
        for p in module.arch_parameters():
            p.grad = None
        return time.perf_counter() - started

    for _ in range(args.warm):
        weight_step()

    fast_vs_exact, exact_vs_exact, t_fast, t_exact, t_fwd_bwd = [], [], [], [], []
    for step in range(args.steps):
        data, other = sample(args.batch_size), sample(args.batch_size)
        started = time.perf_counter()
        module.arch_step(data, step)
        if step > 0:  # the first step fills the table with an exact pass
            t_fast.append(time.perf_counter() - started)
        fast = list(module.marginal_contributions)
        exact, seconds = exact_contributions(module, data)
        t_exact.append(seconds)
        exact_other, _ = exact_contributions(module, other)
        if step >= args.layers:  # once every entry of the table has been measured by the round robin
            fast_vs_exact.append(spearman(fast, exact))
            exact_vs_exact.append(spearman(exact, exact_other))
        t_fwd_bwd.append(weight_step())
    big_exact, _ = exact_contributions(module, sample(args.big))
    final = spearman(list(module.marginal_contributions), big_exact)

    result = {
        "what": "D-DARTS marginal contributions, fast (round robin) vs exact",
        "config": vars(args),
        "fast_vs_exact_median": statistics.median(fast_vs_exact),
        "fast_vs_exact_min": min(fast_vs_exact),
        "exact_vs_exact_median": statistics.median(exact_vs_exact),
        "exact_vs_exact_min": min(exact_vs_exact),
        "fast_vs_exact_big": final,
        "time_arch_fast_s": statistics.median(t_fast),
        "time_arch_exact_s": statistics.median(t_exact),
        "time_forward_backward_s": statistics.median(t_fwd_bwd),
        "arch_exact_over_fast": statistics.median(t_exact) / statistics.median(t_fast),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                    "load_before": load_before, "load_after": os.getloadavg()},
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
