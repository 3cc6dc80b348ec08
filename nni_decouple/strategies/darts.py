"""NNI's own DARTS and GumbelDARTS (GDAS-style) strategies, unchanged, as baseline methods.

NNI's differentiable cell adds an implicit zero op to every edge, so these methods search the
DARTS ops without ``none`` by default: the implicit zero plays its part.
"""

from __future__ import annotations

import argparse
import warnings

from . import Method, register_method

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.strategy import DARTS, GumbelDARTS


def _darts(args: argparse.Namespace) -> DARTS:
    return DARTS(arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip)


def _gdarts(args: argparse.Namespace) -> GumbelDARTS:
    return GumbelDARTS(arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip,
                       temperature=(args.tau_max, args.tau_min))


def _gumbel_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tau-max", type=float, default=10.0, help="initial Gumbel temperature (GDAS: 10)")
    parser.add_argument("--tau-min", type=float, default=0.1, help="final Gumbel temperature (GDAS: 0.1)")


register_method(Method("darts", "NNI's DARTS (first order), unchanged", _darts,
                       space_defaults={"ops": "darts_no_none"}))
register_method(Method("gdarts", "NNI's GumbelDARTS (GDAS-style Gumbel softmax), unchanged", _gdarts,
                       _gumbel_arguments, space_defaults={"ops": "darts_no_none"}))
