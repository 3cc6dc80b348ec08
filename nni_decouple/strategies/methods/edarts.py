"""eDARTS: the CLI side (see :mod:`nni_decouple.strategies.edarts`)."""

from __future__ import annotations

import argparse

from ...options import at_least
from .. import Method, register_method

#: Defaults (the poster gives none; see docs/edarts.md): a tenth of the data, one arch step per epoch.
DEFAULT_SUBSET = 0.1
DEFAULT_UPDATE_EVERY = "epoch"
#: An epoch update moves as far as the DARTS steps it replaces (lr x weight steps per update), on the
#: mean gradient of 4 validation batches (docs/edarts.md: before issue 20, one unscaled step on one batch).
DEFAULT_STEP_SCALE = "auto"
DEFAULT_ARCH_BATCHES = 4
#: Named search paths and attention presets (the registries' keys; a test checks they agree).
PATH_NAMES = ("full", "inputs", "chain")
ATTENTION_NAMES = ("none", "sep")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("eDARTS")
    g.add_argument("--arch-update-every", default=DEFAULT_UPDATE_EVERY, metavar="K|epoch",
                   help="architecture step every K weight steps, or once per epoch (1 = DARTS)")
    g.add_argument("--arch-step-scale", default=DEFAULT_STEP_SCALE, metavar="auto|X",
                   help="factor on --arch-lr for one update: auto = weight steps per update, so an update moves as far "
                        "as the DARTS steps it replaces; 1 = one plain Adam step")
    g.add_argument("--arch-batches", type=at_least(1), default=DEFAULT_ARCH_BATCHES, metavar="N",
                   help="validation batches averaged for one update")
    g.add_argument("--path", default="full", metavar="NAME|SPEC",
                   help=f"fixed search path: {', '.join(PATH_NAMES)} or input ids per node, e.g. '0,1;0,2;1,3;0,4' "
                        f"(full: search the topology)")
    g.add_argument("--attention", default="none", metavar="NAME|SPEC",
                   help=f"log-prior on important ops: {', '.join(ATTENTION_NAMES)} or 'op=bias,...'")
    # eDARTS searches on a subset by default; the common --subset/--balanced flags set it.
    parser.set_defaults(subset=DEFAULT_SUBSET)


register_method(Method(
    "edarts", "eDARTS: DARTS on a data subset with sparse architecture updates (split op sets SS1..SS8)",
    "nni_decouple.strategies.edarts:build", add_arguments, space_defaults={"ops": "darts"},
))
