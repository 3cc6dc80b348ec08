"""``nni-decouple bench``: search cost and search quality of every method next to NNI's DARTS.

``--cost`` (the default) measures step times, peak memory, architecture parameters and a short
search per method and variant; ``--quality`` searches and retrains on MNIST-5k against random
architectures; ``--all`` runs both; ``--write-results`` regenerates ``benchmarks/RESULTS.md`` and
its plots from the JSON files in ``--out``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields
from pathlib import Path

from ..bench.cost import CostConfig
from ..bench.quality import QualityConfig
from ..errors import ConfigError
from ..options import DATASET_NAMES, DEVICES, PRECISIONS


def _comma_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    c, q = CostConfig(), QualityConfig()
    parser = subparsers.add_parser(
        "bench", help="benchmark search cost and quality of every method next to NNI's DARTS",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = parser.add_argument_group("what to run")
    g.add_argument("--cost", action="store_true", help="search-cost benchmark (the default)")
    g.add_argument("--quality", action="store_true", help="search-quality benchmark on MNIST-5k")
    g.add_argument("--all", action="store_true", help="both benchmarks")
    g.add_argument("--write-results", action="store_true",
                   help="regenerate RESULTS.md and its plots from the JSON files in --out")
    g.add_argument("--report-only", action="store_true", help="only regenerate RESULTS.md (no measurement)")
    g.add_argument("--list", action="store_true", help="list the rows (methods and their variants) and exit")
    g.add_argument("--methods", type=_comma_list, default=None,
                   help="comma-separated methods or rows (e.g. dots,dnas[k1]); default: every registered method")
    g.add_argument("--no-variants", action="store_true", help="only each method's defaults, no declared variants")
    g.add_argument("--out", default="benchmarks/results", help="folder of the JSON files and plots")
    g.add_argument("--results-md", default=None, help="RESULTS.md path (default: beside --out)")
    g.add_argument("--tag", default="", help="name this cost run (writes cost-TAG.json, e.g. 'target')")
    g = parser.add_argument_group("both benchmarks")
    g.add_argument("--threads", type=int, default=c.threads, help="torch threads, the same for every method")
    g.add_argument("--no-isolation", action="store_true",
                   help="run every row in this process (faster; memory figures then carry over between rows)")
    g.add_argument("--timeout", type=float, default=None, help="seconds per isolated job")
    g.add_argument("--seed", type=int, default=c.seed)
    g.add_argument("--dataset", choices=DATASET_NAMES, default=c.dataset,
                   help="data of every row (default: the bundled real MNIST-5k; 'digits' is the lightest)")
    g = parser.add_argument_group("cost benchmark")
    g.add_argument("--layers", type=int, default=c.layers, help="cells of the supernet")
    g.add_argument("--channels", type=int, default=c.channels, help="initial channels")
    g.add_argument("--nodes", type=int, default=c.nodes, help="intermediate nodes per cell")
    g.add_argument("--ops", default=None, help="one op set for every method (default: each method's own)")
    g.add_argument("--sharing", choices=["type", "layer"], default=None,
                   help="one sharing for every method (default: each method's own)")
    g.add_argument("--batch-size", type=int, default=c.batch_size)
    g.add_argument("--warmup", type=int, default=c.warmup, help="untimed calls of each step part")
    g.add_argument("--steps", type=int, default=c.steps, help="timed calls of each step part (median reported)")
    g.add_argument("--device", choices=list(DEVICES), default=c.device)
    g.add_argument("--e2e-epochs", type=int, default=c.e2e_epochs, help="epochs of the end-to-end search")
    g.add_argument("--e2e-train-limit", type=int, default=c.e2e_train_limit,
                   help="training images of the end-to-end search")
    g.add_argument("--no-e2e", action="store_true", help="skip the end-to-end search")
    g.add_argument("--no-fast", action="store_true",
                   help="every row without the fast path (docs/performance.md); NNI's DARTS never has it")
    g.add_argument("--precision", choices=list(PRECISIONS), default=c.precision,
                   help="Lightning precision of every row but NNI's DARTS (16-mixed: CUDA only)")
    g.add_argument("--no-floor", action="store_true", help="skip the compute floor (every op alone, summed)")
    g.add_argument("--rounds", type=int, default=c.rounds,
                   help="measure every row this many times, interleaved; report medians over rounds")
    g = parser.add_argument_group("quality benchmark")
    g.add_argument("--q-layers", type=int, default=q.layers, help="cells of the searched supernet")
    g.add_argument("--q-channels", type=int, default=q.channels, help="channels of the searched supernet")
    g.add_argument("--q-nodes", type=int, default=q.nodes)
    g.add_argument("--q-batch-size", type=int, default=q.batch_size, help="search batch")
    g.add_argument("--search-epochs", type=int, default=q.search_epochs)
    g.add_argument("--search-train-limit", type=int, default=q.search_train_limit,
                   help="training images of each search")
    g.add_argument("--retrain-layers", type=int, default=q.retrain_layers,
                   help="cells of the retrained network (default: the search depth)")
    g.add_argument("--retrain-channels", type=int, default=q.retrain_channels)
    g.add_argument("--retrain-epochs", type=int, default=q.retrain_epochs)
    g.add_argument("--retrain-batch-size", type=int, default=q.retrain_batch_size)
    g.add_argument("--retrain-lr", type=float, default=q.retrain_lr)
    g.add_argument("--retrain-train-limit", type=int, default=q.retrain_train_limit,
                   help="training images of each retraining (default: all 4,000)")
    g.add_argument("--seeds", type=int, default=q.seeds, help="searches per method")
    g.add_argument("--random", type=int, default=q.random, help="random architectures (baseline)")
    parser.set_defaults(func=run, subparser=parser)


def _relative(path: str) -> str:
    """A path inside the working directory as a relative one, so RESULTS.md names no folder of this machine."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def canonical_command(args: argparse.Namespace) -> str:
    """The command with every option that differs from its default: what RESULTS.md records."""
    parser: argparse.ArgumentParser = args.subparser
    parts = ["nni-decouple", "bench"]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help",):
            continue
        value = getattr(args, action.dest, None)
        if value == action.default:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            parts.append(flag)
        else:
            text = ",".join(value) if isinstance(value, list) else str(value)
            parts += [flag, _relative(text) if action.dest in ("out", "results_md") else text]
    return " ".join(shlex.quote(p) for p in parts)


def cost_config(args: argparse.Namespace) -> CostConfig:
    config = CostConfig(
        layers=args.layers, channels=args.channels, nodes=args.nodes, ops=args.ops, sharing=args.sharing,
        batch_size=args.batch_size, warmup=args.warmup, steps=args.steps, threads=args.threads, device=args.device,
        seed=args.seed, dataset=args.dataset, e2e_epochs=args.e2e_epochs, e2e_train_limit=args.e2e_train_limit,
        e2e=not args.no_e2e, rounds=args.rounds, isolate=not args.no_isolation, fast=not args.no_fast,
        precision=args.precision, floor=not args.no_floor)
    if args.timeout is not None:
        config.timeout = args.timeout
    return config


def quality_config(args: argparse.Namespace) -> QualityConfig:
    names = {f.name for f in fields(QualityConfig)}
    values = {name: getattr(args, f"q_{name}") for name in ("layers", "channels", "nodes", "batch_size")}
    values.update({name: getattr(args, name) for name in names
                   if hasattr(args, name) and name not in values and name not in ("ops", "sharing")})
    values.update(ops=args.ops, sharing=args.sharing, isolate=not args.no_isolation)
    if args.timeout is None:
        values.pop("timeout", None)
    return QualityConfig(**values)


def run(args: argparse.Namespace) -> int:
    from ..bench.cost import cost_table, reference_table, run_cost
    from ..bench.harness import discover
    from ..io import atomic_write_json

    out = Path(args.out)
    md = Path(args.results_md) if args.results_md else out.parent / "RESULTS.md"
    command = canonical_command(args)
    if args.list:
        for row in discover(args.methods, not args.no_variants):
            extra = f" (reference {row.reference})" if row.reference else ""
            print(f"{row.id}{extra}" + (f": {row.help}" if row.help else ""))
        return 0
    if args.tag and not args.tag.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"--tag must be letters, digits, '-' or '_', got {args.tag!r}")
    do_cost = args.cost or args.all or not (args.quality or args.report_only)
    do_quality = args.quality or args.all
    if args.report_only:
        do_cost = do_quality = False
    # Both checked before either runs: --all must not measure for an hour and then refuse a quality option.
    cost = cost_config(args).validate() if do_cost else None
    quality = quality_config(args).validate() if do_quality else None
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    if cost is not None:
        result = run_cost(cost, args.methods, not args.no_variants, log=log, command=command)
        path = atomic_write_json(out / (f"cost-{args.tag}.json" if args.tag else "cost.json"), result)
        print(cost_table(result))
        ref = reference_table(result)
        if ref:
            print("\nagainst their reference rows / targets:")
            print(ref)
        print(f"\nload average before/after: {result['environment']['load_average_before']} / "
              f"{result['environment']['load_average_after']}")
        print(f"written: {path}")
    if quality is not None:
        from ..bench.quality import quality_table, run_quality

        result = run_quality(quality, args.methods, log=log, command=command)
        path = atomic_write_json(out / "quality.json", result)
        print(quality_table(result))
        print(f"\nload average before/after: {result['environment']['load_average_before']} / "
              f"{result['environment']['load_average_after']}")
        print(f"written: {path}")
    if args.write_results or args.report_only:
        from ..bench.report import write_results

        if not out.is_dir():
            raise ConfigError(f"--out {str(out)!r} holds no benchmark results: run `nni-decouple bench --all` first")
        print(f"written: {write_results(out, md)}")
    return 0
