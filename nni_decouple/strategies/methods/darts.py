"""NNI's own DARTS and GumbelDARTS: the CLI side (see :mod:`nni_decouple.strategies.darts`)."""

from __future__ import annotations

import argparse

from ...options import POSITIVE
from .. import Method, register_method


def _gumbel_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tau-max", type=POSITIVE, default=10.0, help="initial Gumbel temperature (GDAS: 10)")
    parser.add_argument("--tau-min", type=POSITIVE, default=0.1, help="final Gumbel temperature (GDAS: 0.1)")


register_method(Method("darts", "NNI's DARTS (first order), unchanged", "nni_decouple.strategies.darts:build_darts",
                       space_defaults={"ops": "darts_no_none"}))
register_method(Method("gdarts", "NNI's GumbelDARTS (GDAS-style Gumbel softmax), unchanged",
                       "nni_decouple.strategies.darts:build_gdarts", _gumbel_arguments,
                       space_defaults={"ops": "darts_no_none"}))
