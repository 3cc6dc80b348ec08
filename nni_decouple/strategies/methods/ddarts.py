"""D-DARTS: the CLI side (see :mod:`nni_decouple.strategies.ddarts`)."""

from __future__ import annotations

import argparse

from ...options import NON_NEGATIVE, PROBABILITY, at_least
from .. import Method, register_method

DERIVES = ("sparse", "edge")
#: The per-cell schedule's ablation modes and deactivations, and the DARTOpti starts (the registries'
#: names; a test checks they agree).
ABLATIONS = ("exact", "fast", "none")
DEACTIVATIONS = ("zero", "uniform")
NORMALISERS = ("bounded", "stopped", "mean")
STARTS = ("scratch", "resnet18", "resnet50", "xception")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("D-DARTS")
    g.add_argument("--ablation", choices=ABLATIONS, default="exact",
                   help="marginal contributions: exact (n+1 forwards/step), fast (one cell per step, round robin), "
                        "none (FairDARTS loss only)")
    g.add_argument("--w01", type=NON_NEGATIVE, default=7.0, help="zero-one loss weight (paper 7; public code 9)")
    g.add_argument("--wabl", type=NON_NEGATIVE, default=0.5, help="ablation loss weight (paper 0.5; public code 0.7)")
    g.add_argument("--threshold", type=PROBABILITY, default=0.85, help="derivation threshold on sigmoid(alpha)")
    g.add_argument("--derive", choices=DERIVES, default="sparse",
                   help="sparse: top-2 inputs per node; edge: top-2 ops per edge (both >= threshold)")
    g.add_argument("--start", choices=STARTS, default="scratch",
                   help="DARTOpti: start from a handcrafted network over S_o (fixes --layers/--nodes/--ops)")
    g.add_argument("--share-identical", action=argparse.BooleanOptionalAction, default=True,
                   help="with --start: identical cells share one alpha and one optimizer")
    g.add_argument("--deactivate", choices=DEACTIVATIONS, default="zero",
                   help="'cell i removed' for the ablation: zero op weights, or uniform 0.5 (no preference)")
    g.add_argument("--ablation-normaliser", choices=NORMALISERS, default="bounded",
                   help="denominator of the ablation loss: bounded = max(|mean M|, mean |M|, floor), gradient stopped; "
                        "stopped = |mean M|, gradient stopped; mean = |mean M| differentiated (spikes)")
    g.add_argument("--normaliser-floor", type=NON_NEGATIVE, default=1e-2, help="smallest bounded normaliser")
    g.add_argument("--arch-lr-min", type=NON_NEGATIVE, default=1e-3, help="final architecture lr of each cell's cosine")
    g.add_argument("--warmup-epochs", type=at_least(0), default=None,
                   help="weight-only epochs before the search (default: 5 with --start, else 0); part of --epochs")
    parser.set_defaults(arch_lr=3e-3)


register_method(Method("ddarts", "D-DARTS: per-cell search with the ablation loss (and DARTOpti starts)",
                       "nni_decouple.strategies.ddarts:build", add_arguments,
                       space_defaults={"ops": "darts_no_none", "sharing": "layer"},
                       prepare="nni_decouple.strategies.ddarts:prepare"))
