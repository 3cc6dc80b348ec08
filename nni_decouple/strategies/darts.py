"""NNI's own DARTS and GumbelDARTS (GDAS-style) strategies as baseline methods.

The search algorithm is NNI's, unchanged. One thing is fixed for resumable runs: NNI's modules
collect the architecture parameters through a ``set``, so the architecture optimizer lists them
in a different order in every process and a resumed run would give Adam's state to the wrong
parameters; the CLI's versions keep first-seen order instead.

NNI's differentiable cell adds an implicit zero op to every edge, so these methods search the
DARTS ops without ``none`` by default: the implicit zero plays its part.

On the fast path (``fast``, the CLI's ``--fast``, docs/performance.md) the architecture phase of NNI's
step backpropagates to the architecture parameters only (:func:`arch_only_backward`): NNI's full
backward also computes every network-weight gradient, which its weight phase zeroes before use. The
architecture gradients and so the search are NNI's; ``nni-decouple bench`` measures NNI's ``DARTS()``
itself (``fast=False``) as the 1.00x.

:class:`ENAS` is NNI's ENAS made to run under pytorch-lightning 2 (not a CLI method): NNI 3.0 feeds it
the train and validation batches through one sequential loader and tells them apart by unpacking
each batch as ``(data, "train" | "val")`` (pytorch-lightning 1.x) or ``(data, batch_idx,
dataloader_idx)``; pytorch-lightning 2.6 hands ``training_step`` the bare batch ``[x, y]``, so
``(data, mode) = [x, y]`` reads the labels as the mode and the step fails (``ValueError: too many
values to unpack``). :class:`ModeTaggedLoader` tags each batch with its loader, which is the form
NNI's step reads. Its reward is the validation accuracy that
:class:`~nni_decouple.runner.evaluator.SearchModule` logs per step (``reward_metric_name="val_acc"``).

:class:`TPE` is NNI's multi-trial TPE made to search a cell space: NNI hands its HPO tuner the space
as a legacy search-space dict, which has no form for a cell's input choices (``CategoricalMultiple``
with one input chosen: ``NotImplementedError: as_legacy_dict is not implemented ...``, also on NNI's
own DARTS space); the tuner sees each as a plain choice of one input instead.
"""

from __future__ import annotations

import argparse
import types
from typing import Any

from ..nni_noise import importing_nni
from ..search.schedules import backward_to_arch, unique

with importing_nni():
    from nni.mutable import Categorical, CategoricalMultiple
    from nni.nas.strategy import DARTS, GumbelDARTS
    from nni.nas.strategy import ENAS as _NNIENAS
    from nni.nas.strategy import TPE as _NNITPE


def _ordered_arch_parameters(module: Any) -> list:
    return unique(p for m in module.supernet_modules() if hasattr(m, "arch_parameters") for p in m.arch_parameters())


def arch_only_backward(module: Any) -> None:
    """Make the backward passes of NNI's architecture phase stop at the architecture parameters.

    NNI's ``DartsLightningModule.training_step`` backpropagates the architecture loss with
    ``manual_backward`` and the weight loss inside ``advance_optimization`` (which zeroes the weight
    gradients first); so a ``manual_backward`` outside ``advance_optimization`` is the architecture's,
    and its weight gradients are never used (:func:`~nni_decouple.search.schedules.backward_to_arch`)."""
    plain_backward, plain_advance = module.manual_backward, module.advance_optimization
    in_weight_phase = [False]

    def advance_optimization(*args: Any, **kwargs: Any) -> Any:
        in_weight_phase[0] = True
        try:
            return plain_advance(*args, **kwargs)
        finally:
            in_weight_phase[0] = False

    def manual_backward(loss: Any, *args: Any, **kwargs: Any) -> Any:
        if in_weight_phase[0] or args or kwargs:
            return plain_backward(loss, *args, **kwargs)
        return backward_to_arch(module, loss, plain_backward)

    module.advance_optimization, module.manual_backward = advance_optimization, manual_backward


class _OrderedArchParameters:
    """NNI's one-shot module with a deterministic architecture-parameter order and, on the fast path,
    the architecture-only backward (see module doc)."""

    #: The fast path (module doc); ``run_search`` and the benchmark set it.
    fast: bool = True

    def configure_oneshot_module(self, training_module: Any) -> Any:
        module = super().configure_oneshot_module(training_module)  # type: ignore[misc]
        module.arch_parameters = types.MethodType(_ordered_arch_parameters, module)
        if self.fast:
            arch_only_backward(module)
        return module


class ResumableDARTS(_OrderedArchParameters, DARTS):
    """NNI's DARTS with a deterministic architecture-parameter order."""


class ResumableGumbelDARTS(_OrderedArchParameters, GumbelDARTS):
    """NNI's GumbelDARTS with a deterministic architecture-parameter order."""


class ModeTaggedLoader:
    """Yield ``(batch, mode)`` for every batch of ``loader``: the pair NNI's ENAS step unpacks.

    Everything else (``len``, ``sampler``, ``batch_size``, ...) is the wrapped loader's, so Lightning
    sizes the epoch and sets the sampler's epoch as for the loader itself.
    """

    def __init__(self, loader: Any, mode: str) -> None:
        self.loader, self.mode = loader, mode

    def __iter__(self) -> Any:
        return ((batch, self.mode) for batch in self.loader)

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name in ("loader", "mode"):  # not set yet (unpickling): no recursion into __getattr__
            raise AttributeError(name)
        return getattr(self.loader, name)


class ENAS(_NNIENAS):
    """NNI's ENAS (RL controller over a path-sampling supernet), runnable under pytorch-lightning 2.

    Same parameters as NNI's; ``reward_metric_name`` defaults to ``"val_acc"`` (the validation accuracy
    of the sampled path on the validation batch, logged per step). Needs ``tianshou`` (the ``enas`` extra).
    """

    def __init__(self, *, reward_metric_name: str | None = "val_acc", **kwargs: Any) -> None:
        super().__init__(reward_metric_name=reward_metric_name, **kwargs)

    def train_dataloader(self, train_dataloader_fn: Any, val_dataloader_fn: Any) -> Any:
        return super().train_dataloader(lambda: ModeTaggedLoader(train_dataloader_fn(), "train"),
                                        lambda: ModeTaggedLoader(val_dataloader_fn(), "val"))


class _OneInputAsChoice:
    """The model space as NNI's HPO tuners can read it: one-of-n input choices become plain choices."""

    def __init__(self, space: Any) -> None:
        self.space = space
        self.single = {label for label, m in space.simplify().items()
                       if isinstance(m, CategoricalMultiple) and m.n_chosen == 1}

    def simplify(self) -> dict[str, Any]:
        return {label: Categorical(list(m.values), label=label) if label in self.single else m
                for label, m in self.space.simplify().items()}

    def freeze(self, sample: dict[str, Any]) -> Any:
        return self.space.freeze({k: [v] if k in self.single else v for k, v in sample.items()})


class TPE(_NNITPE):
    """NNI's TPE strategy on a cell space (see the module doc); maximises the reported accuracy by default.

    Arguments go to NNI's ``TpeTuner`` (whose own default, ``optimize_mode="minimize"``, would seek the
    worst network when the metric is an accuracy).
    """

    def __init__(self, *args: Any, optimize_mode: str = "maximize", **kwargs: Any) -> None:
        super().__init__(*args, optimize_mode=optimize_mode, **kwargs)

    def _run(self) -> None:
        space = self._model_space
        self._model_space = _OneInputAsChoice(space)  # type: ignore[assignment]
        try:
            super()._run()
        finally:
            self._model_space = space


def build_darts(args: argparse.Namespace) -> DARTS:
    return ResumableDARTS(arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip)


def build_gdarts(args: argparse.Namespace) -> GumbelDARTS:
    return ResumableGumbelDARTS(arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip,
                                temperature=(args.tau_max, args.tau_min))


def _decoupled_darts(args: argparse.Namespace) -> Any:
    from .base import DecoupledStrategy

    return DecoupledStrategy(arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip)


def _decoupled_gdarts(args: argparse.Namespace) -> Any:
    from .base import DecoupledStrategy

    return DecoupledStrategy(weights="gumbel", weights_options={"tau": args.tau_max}, arc_learning_rate=args.arch_lr,
                             gradient_clip_val=args.grad_clip)


def bench_variants(method: str) -> list[dict[str, Any]]:
    """``nni-decouple bench`` rows: DARTS and GDAS through this package's supernet (``search compose``
    with no axes, and with ``--weights gumbel``), which has the whole fast path, against NNI's own
    ``DARTS()``. NNI's ``DifferentiableMixedCell`` sums each edge's ops with ``torch.stack`` and
    ``torch.sum``, which return the default memory format, so channels-last does not carry through
    NNI's own cells (``gdarts`` gets only part of the fast path; docs/performance.md)."""
    if method == "darts":
        return [{"name": "decoupled", "help": "DARTS through this package's supernet (DecoupledStrategy), fast path",
                 "build": _decoupled_darts, "targets": {"time_step": 0.6}}]
    if method == "gdarts":
        return [{"name": "decoupled", "help": "GDAS' Gumbel-softmax op weights through this package's supernet "
                                              "(compose --weights gumbel), fast path",
                 "build": _decoupled_gdarts, "targets": {"time_step": 0.6}}]
    return []
