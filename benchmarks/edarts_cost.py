"""eDARTS' search cost and skip connections against NNI's DARTS on the full data, side by side.

Every row is one ``run_search`` end to end (data, supernet, NNI experiment, Lightning fit,
export), in this one process, with the same space size, batch, epochs, seed and torch threads;
rows are interleaved over ``--rounds`` (a slow phase of the shared machine then hits every row).
Reported per row: end-to-end wall time (median over rounds) and its ratio to NNI's DARTS,
supernet passes (forward + backward of a batch: weight steps plus architecture steps), and the
skip connections of the derived normal and reduction cells (per seed).

Rows: ``darts`` (NNI's ``DARTS()``, full data, DARTS ops with NNI's implicit zero), ``edarts``
(defaults: subset 0.1, one architecture step per epoch), each ingredient alone
(``subset-only``: every step; ``update-only``: full data), and the fixed search path / attention
options on top of the defaults (``path``, ``attention``, ``focus``).

    python benchmarks/edarts_cost.py                       # defaults below
    python benchmarks/edarts_cost.py --rows darts,edarts --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)

from nni_decouple.runner.evaluator import SearchModule  # noqa: E402
from nni_decouple.runner.experiment import SearchConfig, run_search  # noqa: E402
from nni_decouple.strategies.edarts import EDARTS  # noqa: E402

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.strategy import DARTS

HERE = Path(__file__).resolve().parent

#: row -> (strategy factory(seed), op set)
ROWS: dict[str, tuple[Callable[[int], Any], str]] = {
    "darts": (lambda seed: DARTS(), "darts_no_none"),
    "edarts": (lambda seed: EDARTS(seed=seed), "darts"),
    "edarts[subset-only]": (lambda seed: EDARTS(seed=seed, arch_update_every=1), "darts"),
    "edarts[update-only]": (lambda seed: EDARTS(seed=seed, subset=None), "darts"),
    "edarts[path]": (lambda seed: EDARTS(seed=seed, path="inputs"), "darts"),
    "edarts[attention]": (lambda seed: EDARTS(seed=seed, attention="sep"), "darts"),
    "edarts[focus]": (lambda seed: EDARTS(seed=seed, path="inputs", attention="sep"), "darts"),
}


class PassCounter:
    """Counts forward passes of the inner training module (weight steps and architecture steps)."""

    def __init__(self) -> None:
        self.count = 0
        self._original = SearchModule.training_step

        def counted(module: Any, batch: Any, batch_idx: int) -> Any:
            self.count += 1
            return self._original(module, batch, batch_idx)

        SearchModule.training_step = counted  # type: ignore[method-assign]


def run_row(row: str, args: argparse.Namespace, seed: int, passes: PassCounter) -> dict[str, Any]:
    factory, ops = ROWS[row]
    config = SearchConfig(method=row, dataset=args.dataset, epochs=args.epochs, layers=args.layers,
                          channels=args.channels, nodes=args.nodes, ops=ops, batch_size=args.batch_size,
                          train_limit=args.train_limit, seed=seed)
    before = passes.count
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="edarts-cost-") as out:
        result = run_search(config, factory(seed), Path(out) / "run", progress_bar=False)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"row": row, "seed": seed, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "fit_s": round(result.seconds, 2),
            "passes": passes.count - before, "skip_connections": result.genotype.count("skip_connect"),
            "genotype": result.genotype.to_text()}


def summarise(runs: list[dict[str, Any]], rows: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for row in rows:
        mine = [r for r in runs if r["row"] == row]
        summary[row] = {
            "wall_s": statistics.median(r["wall_s"] for r in mine),
            "cpu_s": statistics.median(r["cpu_s"] for r in mine),
            "passes": statistics.median(r["passes"] for r in mine),
            "skip_normal": [r["skip_connections"].get("normal") for r in mine if r["round"] == 0],
            "skip_reduce": [r["skip_connections"].get("reduce") for r in mine if r["round"] == 0],
        }
    base = summary.get("darts")
    for row in rows:
        if base:
            summary[row]["wall_ratio"] = round(summary[row]["wall_s"] / base["wall_s"], 3)
            summary[row]["cpu_ratio"] = round(summary[row]["cpu_s"] / base["cpu_s"], 3)
            summary[row]["passes_ratio"] = round(summary[row]["passes"] / base["passes"], 3)
    return summary


def table(summary: dict[str, Any]) -> str:
    lines = ["| row | end-to-end s | / DARTS | CPU s | / DARTS | passes | / DARTS | skip normal (per seed) "
             "| skip reduce (per seed) |", "|---|---|---|---|---|---|---|---|---|"]
    for row, s in summary.items():
        lines.append(f"| {row} | {s['wall_s']:.1f} | {s.get('wall_ratio', float('nan')):.3f} | {s['cpu_s']:.1f} | "
                     f"{s.get('cpu_ratio', float('nan')):.3f} | {s['passes']:.0f} | "
                     f"{s.get('passes_ratio', float('nan')):.3f} | {s['skip_normal']} | {s['skip_reduce']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows of {', '.join(ROWS)}")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--train-limit", type=int, default=None, help="all 4,000 MNIST-5k training images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=2, help="seeds per row (skip counts are per seed)")
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds (seed 0), interleaved")
    parser.add_argument("--out", default=str(HERE / "results" / "edarts_cost.json"))
    args = parser.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}: choose from {', '.join(ROWS)}")
    torch.set_num_threads(args.threads)
    passes = PassCounter()
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    # Round 0 runs every seed; later rounds repeat seed 0, for timing only. Rows interleave, in
    # alternating order, so that a slow phase of the machine hits every row alike.
    schedule = [(0, seed) for seed in range(args.seeds)] + [(k, 0) for k in range(1, args.rounds)]
    for i, (round_, seed) in enumerate(schedule):
        for row in (rows if i % 2 == 0 else rows[::-1]):
            run = run_row(row, args, seed, passes)
            run["round"] = round_
            runs.append(run)
            print(f"{row} seed {seed} round {round_}: {run['wall_s']} s, {run['passes']} passes, "
                  f"skip {run['skip_connections']}", flush=True)
    summary = summarise(runs, rows)  # times: median over every run of a row (seeds and rounds)
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "options": vars(args), "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "torch": torch.__version__},
        "load_before": load_before, "load_after": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"),
        "summary": summary, "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(summary))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
