"""DNAS: the CLI side (see :mod:`nni_decouple.strategies.dnas`)."""

from __future__ import annotations

import argparse

from ...options import DROP_RATE, NON_NEGATIVE, PROBABILITY, at_least
from .. import Method, register_method


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("DNAS")
    g.add_argument("--weights", default="factorised",
                   help="factorised (DNAS' alpha/beta/gamma, L*C + L*Op + C*Op parameters) or unfactorised "
                        "(per-layer softmax alpha, L*C*Op: the paper's baseline); any registered op-weight name works")
    g.add_argument("--partial-k", type=at_least(1), default=4, metavar="K",
                   help="PC-DARTS partial channels: 1/K of the channels go through the ops (1: all channels)")
    g.add_argument("--skip-drop", type=DROP_RATE, default=0.2, help="dropout on skip connections during search")
    g.add_argument("--w01", type=NON_NEGATIVE, default=10.0, help="FairDARTS zero-one loss weight (0: off)")
    g.add_argument("--zero-one", default="alpha,gamma",
                   help="comma-separated factors the zero-one loss acts on (sigmoid ones: alpha, gamma)")
    g.add_argument("--sigma-alpha", default="sigmoid", choices=["sigmoid", "softmax", "identity"])
    g.add_argument("--sigma-beta", default="softmax", choices=["sigmoid", "softmax", "identity"])
    g.add_argument("--sigma-gamma", default="sigmoid", choices=["sigmoid", "softmax", "identity"])
    g.add_argument("--beta-scope", default="cell", choices=["cell", "node"],
                   help="softmax of beta over all connections of a layer (Eq. 4) or per node")
    g.add_argument("--alpha-sharing", default="all", choices=["all", "type"],
                   help="one alpha for every layer (Eq. 4) or one per cell type")
    g.add_argument("--edge-norm", action="store_true", help="add PC-DARTS' edge normalisation (a topology)")
    g.add_argument("--derive", default="top2",
                   help="top2 (DARTS rule on psi) or threshold (FairDARTS: keep ops whose weight >= --threshold)")
    g.add_argument("--threshold", type=PROBABILITY, default=0.85, help="op-weight threshold of --derive threshold")
    g.add_argument("--warmup-epochs", type=at_least(0), default=0, help="epochs of weight training before arch updates")


register_method(Method(
    "dnas", "DNAS: global per-layer search with factorised alpha/beta/gamma weights, partial channels, "
    "zero-one loss, skip drop", "nni_decouple.strategies.dnas:build", add_arguments,
    space_defaults={"ops": "darts_no_none", "sharing": "layer"}))
