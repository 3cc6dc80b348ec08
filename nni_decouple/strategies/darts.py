"""NNI's own DARTS and GumbelDARTS (GDAS-style) strategies as baseline methods.

The search algorithm is NNI's, unchanged. One thing is fixed for resumable runs: NNI's modules
collect the architecture parameters through a ``set``, so the architecture optimizer lists them
in a different order in every process and a resumed run would give Adam's state to the wrong
parameters; the CLI's versions keep first-seen order instead.

NNI's differentiable cell adds an implicit zero op to every edge, so these methods search the
DARTS ops without ``none`` by default: the implicit zero plays its part.
"""

from __future__ import annotations

import argparse
import types
import warnings
from typing import Any

from ..options import POSITIVE
from ..search.schedules import unique
from . import Method, register_method

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.strategy import DARTS, GumbelDARTS


def _ordered_arch_parameters(module: Any) -> list:
    return unique(p for m in module.supernet_modules() if hasattr(m, "arch_parameters") for p in m.arch_parameters())


class _OrderedArchParameters:
    """Give NNI's one-shot module a deterministic architecture-parameter order (see module doc)."""

    def configure_oneshot_module(self, training_module: Any) -> Any:
        module = super().configure_oneshot_module(training_module)  # type: ignore[misc]
        module.arch_parameters = types.MethodType(_ordered_arch_parameters, module)
        return module


class ResumableDARTS(_OrderedArchParameters, DARTS):
    """NNI's DARTS with a deterministic architecture-parameter order."""


class ResumableGumbelDARTS(_OrderedArchParameters, GumbelDARTS):
    """NNI's GumbelDARTS with a deterministic architecture-parameter order."""


def _darts(args: argparse.Namespace) -> DARTS:
    return ResumableDARTS(arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip)


def _gdarts(args: argparse.Namespace) -> GumbelDARTS:
    return ResumableGumbelDARTS(arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip,
                                temperature=(args.tau_max, args.tau_min))


def _gumbel_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tau-max", type=POSITIVE, default=10.0, help="initial Gumbel temperature (GDAS: 10)")
    parser.add_argument("--tau-min", type=POSITIVE, default=0.1, help="final Gumbel temperature (GDAS: 0.1)")


register_method(Method("darts", "NNI's DARTS (first order), unchanged", _darts,
                       space_defaults={"ops": "darts_no_none"}))
register_method(Method("gdarts", "NNI's GumbelDARTS (GDAS-style Gumbel softmax), unchanged", _gdarts,
                       _gumbel_arguments, space_defaults={"ops": "darts_no_none"}))
