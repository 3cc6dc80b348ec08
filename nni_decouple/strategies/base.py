"""The thin strategy object every method of the package is: one choice per axis.

:class:`DecoupledStrategy` is an NNI one-shot strategy (a subclass of NNI's ``DARTS``, so it
takes the same ``{'train', 'val'}`` loaders) whose mutation hook turns each space cell into a
:class:`~nni_decouple.search.cell.DecoupledCell` built from the chosen op weights, topology and
derivation, and whose Lightning module is the chosen schedule.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import ConfigError
from ..search import load_all as load_search_axes
from ..search.cell import cell_hook
from ..search.derive import derive_options as _derive_options
from ..search.edges import MixedEdge
from ..search.schedules import BilevelModule
from ..search.topology import TOPOLOGIES
from ..search.weights import WEIGHTS

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.strategy import DARTS


def check_sharing(model: Any, want: str | None, what: str) -> None:
    """Refuse a space whose cell sharing is not ``want`` (one rule for every method and the composer).

    ``what`` names the search that needs it (e.g. ``DNAS (a global search)`` or ``--space global``).
    A space that does not say how it shares (not a :class:`~nni_decouple.spaces.CellSpace`) is let through.
    """
    sharing = getattr(model, "sharing", None)
    if want is not None and sharing is not None and sharing != want:
        raise ConfigError(f"{what} needs a space with sharing={want!r}, but the space has sharing={sharing!r}: "
                          f"build it as CellSpace(sharing={want!r}, ...) (the CLI does)")


class DecoupledStrategy(DARTS):
    """One-shot strategy assembled from the axes of the package (the axes: docs/architecture.md)."""

    schedule_cls: type[BilevelModule] = BilevelModule
    #: The cell sharing the method's space must have (``None``: any), and how errors name the method.
    space_sharing: str | None = None
    space_what: str = "this method"

    def __init__(self, *, weights: str = "softmax", weights_options: dict[str, Any] | None = None,
                 topology: str = "none", topology_options: dict[str, Any] | None = None,
                 derive: str = "top2", derive_options: dict[str, Any] | None = None,
                 edge_factory: Any = MixedEdge, schedule_options: dict[str, Any] | None = None,
                 arc_learning_rate: float = 3e-4, gradient_clip_val: float | None = 5.0, warmup_epochs: int = 0,
                 fast: bool = True, **kwargs: Any) -> None:
        super().__init__(arc_learning_rate=arc_learning_rate, gradient_clip_val=gradient_clip_val,
                         warmup_epochs=warmup_epochs, **kwargs)
        load_search_axes()
        if weights not in WEIGHTS:
            raise ConfigError(f"unknown op-weight parametrisation {weights!r}: choose one of {', '.join(WEIGHTS)}")
        if topology not in TOPOLOGIES:
            raise ConfigError(f"unknown topology {topology!r}: choose one of {', '.join(TOPOLOGIES)}")
        self.weights, self.weights_options = weights, dict(weights_options or {})
        self.topology, self.topology_options = topology, dict(topology_options or {})
        self.derive, self.derive_kwargs = _derive_options(derive, derive_options)
        self.derive_name = derive
        self.edge_factory = edge_factory
        self.schedule_options = dict(schedule_options or {})
        #: The cells' fast path (:mod:`~nni_decouple.search.cell`); ``run_search`` sets it from ``--fast``.
        self.fast = fast

    def describe(self, epochs: int) -> list[str]:
        """Console lines about what this strategy will run (e.g. DOTS' stage plan over ``epochs``)."""
        describe = getattr(self.schedule_cls, "describe_plan", None)
        return describe(self.schedule_options, epochs) if describe is not None else []

    def make_weights(self, graph: Any, spec: Any, label: str, memo: dict[str, Any]) -> Any:
        return WEIGHTS[self.weights](graph, spec, label, memo, **self.weights_options)

    def make_topology(self, graph: Any, spec: Any, label: str, memo: dict[str, Any]) -> Any:
        return TOPOLOGIES[self.topology](graph, spec, label, memo, **self.topology_options)

    def mutate_model(self, model: Any) -> Any:
        check_sharing(model, self.space_sharing, self.space_what)
        return super().mutate_model(model)

    def default_mutation_hooks(self) -> list:
        hook = cell_hook(self.make_weights, self.make_topology, self.derive, self.derive_kwargs, self.edge_factory,
                         fast=self.fast)
        return [hook, *super().default_mutation_hooks()]

    def configure_oneshot_module(self, training_module: Any) -> BilevelModule:
        module = self.schedule_cls(
            training_module, arc_learning_rate=self.arc_learning_rate, gradient_clip_val=self.gradient_clip_val,
            log_prob_every_n_step=self.log_prob_every_n_step, warmup_epochs=self.warmup_epochs,
            **self.schedule_options,
        )
        module.arch_only_backward = self.fast
        return module
