"""Regenerate every number in ``benchmarks/RESULTS.md``: one command for the whole recorded set.

1. ``cost``: search cost on the small default space (5 cells, 8 channels, 4 nodes, batch 8), every
   row twice, interleaved;
2. ``target``: search cost at the size the method issues state their targets at (8 cells, 16
   channels, batch 32; no end-to-end search), tagged ``target``;
3. ``e2e``: the end-to-end search with a larger budget (2 epochs on 1,024 images), where training
   rather than start-up dominates, for the rows with an end-to-end target, tagged ``e2e``;
4. ``quality``: search quality on MNIST-5k (3 seeds per method, 6 random architectures; 2 threads,
   since nothing is timed there);
5. RESULTS.md and the plots from the JSON files.

Extra arguments go to every step (e.g. ``--methods dots,dnas`` or ``--threads 2``)::

    python benchmarks/run.py
    python benchmarks/run.py --only cost       # one step (cost, target, e2e, quality) and the report
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nni_decouple.cli import main

HERE = Path(__file__).resolve().parent
OUT = ["--out", str(HERE / "results"), "--results-md", str(HERE / "RESULTS.md")]

STEPS: dict[str, list[str]] = {
    "cost": ["bench", "--cost", "--rounds", "2"],
    "target": ["bench", "--cost", "--layers", "8", "--channels", "16", "--batch-size", "32", "--warmup", "1",
               "--steps", "3", "--no-e2e", "--tag", "target"],
    "e2e": ["bench", "--cost", "--methods", "edarts[default]", "--e2e-train-limit", "1024", "--warmup", "0",
            "--steps", "1", "--tag", "e2e"],
    "quality": ["bench", "--quality", "--threads", "2"],
}


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(STEPS), action="append", help="run only these steps")
    args, extra = parser.parse_known_args(argv)
    for name, step in STEPS.items():
        if args.only and name not in args.only:
            continue
        print(f"== {' '.join(['nni-decouple', *step, *extra])}", flush=True)
        rc = main([*step, *OUT, *extra])
        if rc:
            return rc
    return main(["bench", "--report-only", *OUT])


if __name__ == "__main__":
    sys.exit(run())
