"""Stretchable Cells (Huang et al., AAAI 2022): explicit topology over output-edge combinations.

Axes (docs/architecture.md): op weights ``softmax`` (DARTS' alpha, no ``none`` op); topology ``output_any``
(binary codes over each node's successors, Eq. 11-13) or ``output_pairs`` (two output edges per
node, Eq. 7-10), or for the paper's ablation ``input_pairs`` / ``input_any`` (Eq. 3-6); the
passive-aggressive regulariser ``lambda * r(beta)`` (Eq. 14) on the architecture loss; schedule
DARTS first order (:class:`~nni_decouple.search.schedules.BilevelModule`) or MiLeNAS mixed level
(:class:`~nni_decouple.search.schedules.milenas.MiLeNASModule`); derivation ``stretchable`` (argmax
code per node, nodes without inputs dropped). Search and evaluation use the same number of layers:
the genotype's ``meta['eval_layers']`` records it.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ..models.ops import resolve_ops
from ..search.schedules import BilevelModule
from ..search.schedules.milenas import MiLeNASModule
from .base import DecoupledStrategy
from .methods.stretchable import OPTIMIZER_NAMES

TOPOLOGIES = {("output", "any"): "output_any", ("output", "two"): "output_pairs",
              ("input", "any"): "input_any", ("input", "two"): "input_pairs"}
OPTIMIZERS: dict[str, type[BilevelModule]] = dict(zip(OPTIMIZER_NAMES, (BilevelModule, MiLeNASModule), strict=True))


def check_no_none(op_names: Any) -> None:
    if "none" in tuple(op_names):
        raise ConfigError("Stretchable Cells search without the 'none' op (the topology variables decide which "
                          "edges exist; the paper removes the zero op): use --ops darts_no_none or leave 'none' "
                          "out of --ops")


class StretchableCells(DecoupledStrategy):
    """Stretchable Cells as an NNI one-shot strategy; usable with ``NasExperiment`` like NNI's ``DARTS``.

    Parameters
    ----------
    optimizer
        ``milenas`` (mixed level, the paper's MiLeNAS-SC) or ``darts`` (first-order bilevel, the
        paper's DARTS-SC / "DARTS w/o SC").
    topology
        ``output`` (each node picks the successors it feeds; the paper's method) or ``input`` (each
        node picks its inputs; the paper's ablation, Table 5).
    edges
        ``any`` (any number of edges, binary codes; stretchable cells) or ``two`` (fixed two edges
        per node; "w/o SC").
    reg_lambda
        Weight of the passive-aggressive regulariser r(beta) (Eq. 15: 10). Output topology only; an
        input topology cannot leave a node without inputs.
    include_empty
        Output ``any`` only: the empty code (a node feeds no later node) is a choice (the paper).
    scale
        Scale merged weights by Eq. 10 / Eq. 13 (output topology): ``True``/``'even'`` (uniform
        probabilities give every edge weight 1, with or without the empty code), ``'printed'``
        (Eq. 13 as printed) or ``False``.
    init_scale
        ``beta ~ init_scale * N(0, 1)``.
    lambda_train, lambda_val
        MiLeNAS: architecture gradient ``lambda_val * grad L_val + lambda_train * grad L_train`` (1, 1).
    shared_forward
        MiLeNAS: one ``L_train`` pass serves the weight and the architecture gradient (see
        :mod:`~nni_decouple.search.schedules.milenas`).
    arc_learning_rate, arc_betas, arc_weight_decay
        Architecture Adam (DARTS / MiLeNAS: 3e-4, (0.5, 0.999), 1e-3).
    """

    def __init__(self, *, optimizer: str = "milenas", topology: str = "output", edges: str = "any",
                 reg_lambda: float = 10.0, include_empty: bool = True, scale: bool | str = True,
                 init_scale: float = 1e-3,
                 lambda_train: float = 1.0, lambda_val: float = 1.0, shared_forward: bool = True,
                 arc_learning_rate: float = 3e-4, arc_betas: tuple[float, float] = (0.5, 0.999),
                 arc_weight_decay: float = 1e-3, gradient_clip_val: float | None = 5.0, **kwargs: Any) -> None:
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown --optimizer {optimizer!r}: choose darts (first order) or milenas (mixed level)")
        if (topology, edges) not in TOPOLOGIES:
            raise ConfigError(f"unknown --topology {topology!r} / --edges {edges!r}: topology is output or input, "
                              f"edges is two or any")
        if reg_lambda < 0:
            raise ConfigError(f"--reg-lambda must be >= 0, got {reg_lambda}")
        if topology == "output":
            topology_options: dict[str, Any] = {"reg_lambda": reg_lambda, "scale": scale, "init_scale": init_scale}
            if edges == "any":
                topology_options["include_empty"] = include_empty
        else:
            topology_options = {"init_scale": init_scale}
        schedule_options: dict[str, Any] = {"arc_betas": tuple(arc_betas), "arc_weight_decay": arc_weight_decay}
        if optimizer == "milenas":
            schedule_options.update(lambda_train=lambda_train, lambda_val=lambda_val, shared_forward=shared_forward)
        schedule_options.update(kwargs.pop("schedule_options", {}))
        super().__init__(weights="softmax", topology=TOPOLOGIES[topology, edges], topology_options=topology_options,
                         derive="stretchable", schedule_options=schedule_options,
                         arc_learning_rate=arc_learning_rate, gradient_clip_val=gradient_clip_val, **kwargs)
        self.schedule_cls = OPTIMIZERS[optimizer]
        self.optimizer_name, self.topology_view, self.edges = optimizer, topology, edges

    def make_weights(self, graph: Any, spec: Any, label: str, memo: dict[str, Any]) -> Any:
        check_no_none(spec.op_names)
        return super().make_weights(graph, spec, label, memo)

    def genotype_meta(self, config: Any) -> dict[str, Any]:
        """The paper evaluates with the number of layers it searched with (consistent depth)."""
        return {"eval_layers": int(config.layers), "optimizer": self.optimizer_name,
                "topology": f"{self.topology_view}/{self.edges}"}


# ----------------------------------------------------------------------------- CLI
def build(args: argparse.Namespace) -> StretchableCells:
    check_no_none(resolve_ops(args.ops or "darts_no_none"))
    return StretchableCells(optimizer=args.optimizer, topology=args.topology, edges=args.edges,
                            reg_lambda=args.reg_lambda, include_empty=args.include_empty,
                            scale=(args.scale_rule if args.scale else False),
                            init_scale=args.beta_init, lambda_train=args.milenas_lambda,
                            shared_forward=args.shared_forward, arc_learning_rate=args.arch_lr,
                            gradient_clip_val=args.grad_clip)


# ----------------------------------------------------------------------------- benchmark rows
def bench_variants(method: str) -> list[dict[str, Any]]:
    """Rows for ``nni-decouple bench``: the issue's target is step time and peak memory within 1.10x
    of NNI's DARTS on the same space (NNI adds its implicit zero op to every edge)."""
    targets = {"time_step": 1.10, "peak_rss_delta_mb": 1.10}
    return [
        {"name": "paper", "help": "MiLeNAS, output edges, any number (MiLeNAS-SC)", "targets": targets},
        {"name": "darts", "help": "DARTS first order, output edges, any number (DARTS-SC)",
         "args": {"optimizer": "darts"}, "targets": targets},
        {"name": "pairs", "help": "DARTS first order, two output edges per node (DARTS w/o SC)",
         "args": {"optimizer": "darts", "edges": "two"}, "targets": targets},
        {"name": "input", "help": "MiLeNAS, input-edge view (the paper's ablation)", "args": {"topology": "input"}},
        {"name": "milenas3", "help": "MiLeNAS with the public code's three passes per step",
         "args": {"shared_forward": False}},
    ]
