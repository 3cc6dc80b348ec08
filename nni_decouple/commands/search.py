"""``nni-decouple search METHOD``: run a search and write the run directory."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields
from typing import Any

from ..options import DATASET_NAMES, DEVICES, NON_NEGATIVE, POSITIVE, PRECISIONS
from ..runner.config import SearchConfig
from ..strategies import get_method, load_all
from ._help import DefaultsHelpFormatter


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every method shares."""
    d = SearchConfig()
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default=d.dataset, choices=DATASET_NAMES,
                   help="dataset (default: the bundled real MNIST-5k)")
    g.add_argument("--data-root", default=None, help="dataset root for cifar10/cifar100/imagenet/imagefolder")
    g.add_argument("--train-limit", type=int, default=None, metavar="N", help="use only N training images")
    g.add_argument("--subset", type=float, default=d.subset, metavar="FRACTION",
                   help="search on a seeded random fraction of the training images (eDARTS; unset: all of them)")
    g.add_argument("--balanced", dest="subset_balanced", action=argparse.BooleanOptionalAction,
                   default=d.subset_balanced, help="give every class an equal share of --subset")
    g.add_argument("--train-portion", type=float, default=d.train_portion,
                   help="share of the training images for weights; the rest update the architecture")
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--num-workers", type=int, default=d.num_workers)
    g = parser.add_argument_group("space")
    g.add_argument("--layers", type=int, default=d.layers, help="cells L (reductions at L//3 and 2L//3)")
    g.add_argument("--channels", type=int, default=d.channels, help="initial channels C")
    g.add_argument("--nodes", type=int, default=d.nodes, help="intermediate nodes per cell")
    g.add_argument("--ops", default=None, help="op set name (darts, darts_no_none, s_o, ...) or comma-separated ops")
    g.add_argument("--sharing", choices=["type", "layer"], default=None,
                   help="one cell per type (DARTS) or per layer (global search)")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--lr", dest="learning_rate", type=float, default=d.learning_rate, help="weight SGD lr")
    g.add_argument("--lr-min", dest="learning_rate_min", type=float, default=d.learning_rate_min)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--arch-lr", type=POSITIVE, default=3e-4, help="architecture Adam lr")
    g.add_argument("--grad-clip", type=NON_NEGATIVE, default=5.0, help="weight gradient clipping (norm)")
    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--devices", type=int, default=d.devices, help="processes (DDP; gloo on the CPU)")
    g.add_argument("--device", choices=list(DEVICES), default=d.device, help="where the search runs")
    g.add_argument("--precision", choices=list(PRECISIONS), default=d.precision,
                   help="Lightning precision: bf16-mixed (CPU, CUDA) or 16-mixed (CUDA) autocast")
    g.add_argument("--fast", action=argparse.BooleanOptionalAction, default=d.fast,
                   help="the fast path: channels-last supernet, shared pools, no work for zero weights "
                        "(same search; docs/performance.md)")
    g.add_argument("--out", default=None, help="run directory (default: runs/METHOD-DATASET)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--force", action="store_true",
                   help="replace the run in --out (deletes its outputs first; keeps other files)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--recipe", default=None, help="YAML recipe with option defaults (see configs/search/)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("search", help="search an architecture with one of the methods",
                                   formatter_class=DefaultsHelpFormatter)
    methods = parser.add_subparsers(dest="method", metavar="METHOD", required=True)
    for method in sorted(load_all().values(), key=lambda m: m.name):
        sub = methods.add_parser(method.name, help=method.help, description=method.help,
                                 formatter_class=DefaultsHelpFormatter)
        add_common_arguments(sub)
        method.add_arguments(sub)
        sub.set_defaults(func=run, subparser=sub)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    names = {f.name for f in fields(SearchConfig)} - {"method", "method_options"}
    common = {name: getattr(args, name) for name in names if hasattr(args, name)}
    method_options = {k: v for k, v in vars(args).items()
                      if k not in names and k not in {"command", "method", "func", "out", "resume", "force",
                                                      "no_progress", "recipe", "subparser"}}
    return SearchConfig(method=args.method, method_options=method_options, **common)


def run(args: argparse.Namespace) -> int:
    from ..runner.experiment import is_rank_zero, run_search, skip_counts

    method = get_method(args.method)
    space_defaults = dict(method.space_defaults)
    if method.prepare is not None:
        space_defaults.update(method.prepare(args))
    config = config_from_args(args)
    strategy = method.build(args)
    out = args.out or f"runs/{args.method}-{args.dataset}"
    result = run_search(config, strategy, out, resume=args.resume, force=args.force,
                        progress_bar=not args.no_progress, space_defaults=space_defaults, announce=print)
    if not is_rank_zero():  # the other DDP ranks searched the same architecture and wrote nothing
        return 0
    genotype = result.genotype
    print(f"\nsearched {args.method} on {args.dataset} in {result.seconds:.1f} s")
    print(f"genotype: {genotype.to_text()}")
    print("skip connections: " + ", ".join(f"{cell} {n}" for cell, n in skip_counts(genotype).items()))
    from ..runner.health import verdict
    from ..runner.recorder import read_history

    history = read_history(result.out) if result.out is not None else []
    print(verdict(history[-1].get("health") if history else None))
    print(f"written: {result.out}/genotype.json, arch_probs.json, arch_history.jsonl, checkpoints/, logs/",
          file=sys.stdout)
    print(next_steps(result.out, args.method))
    sys.stdout.flush()
    return 0


def next_steps(out: Any, method: str = "search") -> str:
    """What a user does with a finished search: the commands for this run directory."""
    run = shlex.quote(str(out))
    return "\n".join([
        "next:",
        f"  nni-decouple show {run} --out {shlex.quote(str(out) + '/cells.png')}   # draw the searched cells",
        f"  nni-decouple report {run}                  # one HTML page about the search, with its health checks",
        f"  nni-decouple export {run} --name my_{method}   # the searched cell as a timm model, nd_my_{method}",
        f"  nni-decouple train {run} --dataset DATASET  # retrain the network (DARTS' recipe), then `export`",
        f"  tensorboard --logdir {shlex.quote(str(out) + '/tensorboard')}",
    ])
