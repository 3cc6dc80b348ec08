"""DOTS: the CLI side (see :mod:`nni_decouple.strategies.dots`)."""

from __future__ import annotations

import argparse

from ...options import NON_NEGATIVE, POSITIVE
from .. import Method, register_method

EDGES = {"two": "input_pairs", "any": "input_any"}
#: Op-search options -> op-weight parametrisation searched before the topology stage.
OP_SEARCHES = {"grouped": "grouped", "darts": "softmax", "gdas": "gumbel"}
#: DOTS' published stage lengths (of 70 epochs); the staged schedule's own constant (a test checks they agree).
PUBLISHED_STAGE_EPOCHS = (15, 15, 20, 20)
#: When the topology temperature changes, and from how many topology-search epochs ``auto`` anneals per
#: epoch (the staged schedule's constants; a test checks they agree).
ANNEALS = ("auto", "epoch", "step")
MIN_EPOCH_ANNEAL = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("DOTS")
    g.add_argument("--edges", choices=sorted(EDGES), default="two",
                   help="input edges per node: two (pairs, as published) or any non-empty combination (c_m sets)")
    g.add_argument("--op-search", choices=list(OP_SEARCHES), default="grouped",
                   help="grouped: one softmax per op group (Method 2); darts / gdas: Method 1")
    g.add_argument("--survivors", default=None, metavar="groups|K",
                   help="ops each edge keeps for the topology stage (default: groups for grouped, 1 otherwise)")
    g.add_argument("--stage-epochs", default=None, metavar="A,B,C,D|auto",
                   help="epochs of op warm-up, op search, topology warm-up, topology search; must add up to "
                        "--epochs (default / auto: the published "
                        f"{','.join(map(str, PUBLISHED_STAGE_EPOCHS))} scaled to --epochs)")
    g.add_argument("--t-max", type=POSITIVE, default=10.0, help="initial topology temperature")
    g.add_argument("--t-min", type=POSITIVE, default=0.02, help="final topology temperature")
    g.add_argument("--anneal", choices=ANNEALS, default="auto",
                   help=f"when T (and gdas' tau) change: every epoch (published), every step, or auto (per epoch "
                        f"from {MIN_EPOCH_ANNEAL} topology-search epochs on, per step below)")
    g.add_argument("--choice-scale", type=POSITIVE, default=1e-3,
                   help="near-hard choice between survivors: softmax(a / (scale * T))")
    g.add_argument("--tau-max", type=POSITIVE, default=10.0, help="initial Gumbel temperature of gdas")
    g.add_argument("--tau-min", type=POSITIVE, default=0.1, help="final Gumbel temperature of gdas")
    g.add_argument("--gumbel-hard", action="store_true", help="gdas: straight-through one-hot samples")
    g.add_argument("--topology-warmup-data", choices=["train", "full"], default="train",
                   help="topology warm-up on the weight half (public code) or on both halves")
    g.add_argument("--arch-betas", default="0.5,0.999", help="op-search Adam betas")
    g.add_argument("--arch-weight-decay", type=NON_NEGATIVE, default=1e-3, help="architecture Adam weight decay")
    g.add_argument("--topology-betas", default="0.9,0.999", help="topology-search Adam betas (as the public code)")


register_method(Method(
    "dots", "DOTS: decoupled operation and topology search (grouped op search, then topology over input edges)",
    "nni_decouple.strategies.dots:build", add_arguments,
    space_defaults={"ops": "darts", "sharing": "type", "nodes": 4}))
