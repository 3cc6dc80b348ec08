"""Stretchable Cells: the CLI side (see :mod:`nni_decouple.strategies.stretchable`)."""

from __future__ import annotations

import argparse

from ...options import FINITE, NON_NEGATIVE
from .. import Method, register_method

#: The architecture optimizers (``--optimizer``): first-order DARTS or MiLeNAS' mixed level.
OPTIMIZER_NAMES = ("darts", "milenas")
#: The paper's N = 9 counts nodes the DARTS way (DARTS' cell is "7 nodes": 2 inputs, 4 intermediate,
#: 1 output; the search "increases N to 9"): 6 intermediate nodes (``--nodes``). See docs/stretchable.md.
PAPER_NODES = 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Stretchable Cells")
    g.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default="milenas",
                   help="milenas: mixed level (MiLeNAS-SC); darts: first-order bilevel")
    g.add_argument("--topology", choices=["output", "input"], default="output",
                   help="output: each node picks the successors it feeds; input: its inputs (ablation)")
    g.add_argument("--edges", choices=["any", "two"], default="any",
                   help="any number of edges per node (stretchable) or exactly two (w/o SC)")
    g.add_argument("--reg-lambda", type=NON_NEGATIVE, default=10.0,
                   help="weight of the passive-aggressive regulariser r(beta) (paper: 10; 0 turns it off)")
    g.add_argument("--empty-code", dest="include_empty", action=argparse.BooleanOptionalAction, default=True,
                   help="output/any: a node may feed no later node (the paper's 2^(N-i) codes)")
    g.add_argument("--topology-scale", dest="scale", action=argparse.BooleanOptionalAction, default=True,
                   help="scale merged edge weights by Eq. 10 / Eq. 13")
    g.add_argument("--scale-rule", choices=["even", "printed"], default="even",
                   help="even: uniform code probabilities give every edge weight 1, also with the empty code; "
                        "printed: Eq. 13 as printed")
    g.add_argument("--beta-init", type=FINITE, default=1e-3, help="topology variables start at this * N(0, 1)")
    g.add_argument("--milenas-lambda", type=NON_NEGATIVE, default=1.0,
                   help="MiLeNAS: weight of grad L_train in the architecture gradient")
    g.add_argument("--milenas-three-pass", dest="shared_forward", action="store_false",
                   help="MiLeNAS: evaluate L_train again for the weight step, as the public code (3 passes a step)")
    # The paper's N = 9 counts inputs and output the DARTS way: 6 intermediate nodes.
    parser.set_defaults(nodes=PAPER_NODES)


register_method(Method(
    "stretchable", "Stretchable Cells: explicit topology over output-edge combinations, DARTS or MiLeNAS",
    "nni_decouple.strategies.stretchable:build", add_arguments,
    space_defaults={"ops": "darts_no_none", "sharing": "type", "nodes": PAPER_NODES}))
