"""DOTS (Gu et al., CVPR 2021): decoupled operation and topology search, as an NNI strategy.

Axes (docs/architecture.md): op weights ``survivors`` around an op search (``grouped`` softmax per op group:
the paper's Method 2; or DARTS ``softmax`` / GDAS ``gumbel``: Method 1), pruned to each edge's
survivors for the topology stage and then a near-hard choice between them; topology
``input_pairs`` (two input edges per node, as published) or ``input_any`` (the paper's c_m sets);
schedule :class:`~nni_decouple.search.schedules.staged.StagedModule` (op warm-up, op search,
topology warm-up on a fresh pruned supernet, one-level topology search with annealing); derivation
``dots`` (argmax combination per node, argmax op per chosen edge, never ``none``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError
from ..search.edges.nonzero import NonZeroMixedEdge
from ..search.schedules.staged import ANNEALS, PUBLISHED_STAGE_EPOCHS, StagedModule, StagePlan
from .base import DecoupledStrategy
from .methods.dots import EDGES, OP_SEARCHES


class DOTS(DecoupledStrategy):
    """DOTS as an NNI one-shot strategy; usable with ``NasExperiment`` like NNI's ``DARTS``.

    Parameters
    ----------
    edges
        ``two``: each node combines exactly two input edges (published); ``any``: any non-empty
        combination (the paper's c_m sets).
    op_search
        ``grouped`` (Method 2: one softmax per op group, pruned to the best op of each group),
        ``darts`` (softmax over all ops) or ``gdas`` (Gumbel softmax, NNI's GumbelDARTS) (Method 1).
    survivors
        Ops each edge keeps for the topology stage: ``'groups'`` (one per op group; default for
        ``grouped``) or a number (the best non-``none`` ops; default 1 for ``darts``/``gdas``, as in
        the paper's Method 1 figure).
    stage_epochs
        Epochs of op warm-up, op search, topology warm-up, topology search; must add up to the
        search's epochs. ``None`` scales the published 15/15/20/20 (of 70) to the run.
    t_max, t_min
        Topology-search temperature, annealed exponentially (10 -> 0.02).
    anneal
        ``epoch`` (published: T changes once per epoch), ``step`` (after every step, along the same
        curve, reaching t_min at the stage's end) or ``auto`` (default: per epoch from 10
        topology-search epochs on, per step below, so that short runs anneal too).
    choice_scale
        The near-hard choice between survivors is ``softmax(a / (choice_scale * T))`` (1e-3).
    tau_max, tau_min
        Gumbel temperature of ``gdas``, linear over the op-search stage (GDAS: 10 -> 0.1).
    gumbel_hard
        Straight-through one-hot Gumbel samples (GDAS) instead of soft ones (NNI's GumbelDARTS).
    topology_warmup_data
        ``train`` (the weight half, as the public code) or ``full`` (both halves).
    arc_betas, arc_weight_decay, arc_learning_rate
        Architecture Adam in the op search (DARTS: (0.5, 0.999), 1e-3, 3e-4).
    topology_betas
        Adam betas in the topology search (the public code's (0.9, 0.999)).
    """

    schedule_cls = StagedModule

    def __init__(self, *, edges: str = "two", op_search: str = "grouped", survivors: str | int | None = None,
                 stage_epochs: Sequence[int] | None = None, t_max: float = 10.0, t_min: float = 0.02,
                 anneal: str = "auto",
                 choice_scale: float = 1e-3, tau_max: float = 10.0, tau_min: float = 0.1, gumbel_hard: bool = False,
                 topology_warmup_data: str = "train", arc_learning_rate: float = 3e-4,
                 arc_betas: tuple[float, float] = (0.5, 0.999), arc_weight_decay: float = 1e-3,
                 topology_betas: tuple[float, float] = (0.9, 0.999), gradient_clip_val: float | None = 5.0,
                 **kwargs: Any) -> None:
        if anneal not in ANNEALS:
            raise ConfigError(f"unknown --anneal {anneal!r}: choose one of {', '.join(ANNEALS)}")
        if edges not in EDGES:
            raise ConfigError(f"unknown --edges {edges!r}: choose 'two' (pairs, as published) or 'any' (c_m sets)")
        if op_search not in OP_SEARCHES:
            raise ConfigError(f"unknown --op-search {op_search!r}: choose one of {', '.join(OP_SEARCHES)}")
        if survivors is None:
            survivors = "groups" if op_search == "grouped" else 1
        search_options: dict[str, Any] = {}
        if op_search == "gdas":
            search_options = {"tau": tau_max, "hard": gumbel_hard}
        schedule_options = {
            "stage_epochs": None if stage_epochs is None else tuple(stage_epochs),
            "t_max": t_max, "t_min": t_min, "tau_max": tau_max, "tau_min": tau_min, "anneal": anneal,
            "topology_betas": tuple(topology_betas), "topology_warmup_data": topology_warmup_data,
            "arc_betas": tuple(arc_betas), "arc_weight_decay": arc_weight_decay,
            **kwargs.pop("schedule_options", {}),
        }
        super().__init__(
            weights="survivors",
            weights_options={"search": OP_SEARCHES[op_search], "search_options": search_options,
                             "keep": survivors, "choice_scale": choice_scale},
            topology=EDGES[edges], derive="dots", schedule_options=schedule_options,
            edge_factory=kwargs.pop("edge_factory", NonZeroMixedEdge),
            arc_learning_rate=arc_learning_rate, gradient_clip_val=gradient_clip_val, **kwargs)
        self.edges, self.op_search, self.survivors = edges, op_search, survivors


# ----------------------------------------------------------------------------- CLI
def parse_numbers(text: str | Sequence[Any] | None, count: int, cast: type, name: str) -> tuple[Any, ...] | None:
    """``'15,15,20,20'`` (or a list from a recipe) -> a tuple of ``count`` numbers."""
    if text is None or text in ("", "auto"):
        return None
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    try:
        values = tuple(cast(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {count} comma-separated numbers, got {text!r}") from None
    if len(values) != count:
        raise ConfigError(f"{name} must be {count} comma-separated numbers, got {text!r}")
    return values


def _adam_betas(text: str | Sequence[Any] | None, name: str) -> tuple[float, float] | None:
    """Adam's two betas, each in [0, 1) (Adam itself would fail with a traceback at the first step)."""
    betas = parse_numbers(text, 2, float, name)
    if betas is not None and not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"{name} must be two numbers in [0, 1), got {text!r}")
    return betas


def build(args: argparse.Namespace) -> DOTS:
    stage_epochs = parse_numbers(args.stage_epochs, 4, int, "--stage-epochs")
    if stage_epochs is not None and sum(stage_epochs) != args.epochs and not getattr(args, "resume", False):
        # a fresh run must match exactly (a resumed run may have been given more epochs)
        raise ConfigError(f"--stage-epochs {','.join(map(str, stage_epochs))} add up to {sum(stage_epochs)}, but "
                          f"--epochs is {args.epochs}: make them match, or use --stage-epochs auto to scale the "
                          f"published {','.join(map(str, PUBLISHED_STAGE_EPOCHS))}")
    StagePlan.resolve(stage_epochs, args.epochs, anneal=args.anneal)  # the remaining checks, before any work
    survivors = args.survivors
    if survivors is not None and survivors != "groups":
        try:
            survivors = int(survivors)
        except ValueError:
            raise ConfigError(f"--survivors must be 'groups' or a number of ops, got {survivors!r}") from None
    return DOTS(edges=args.edges, op_search=args.op_search, survivors=survivors, stage_epochs=stage_epochs,
                t_max=args.t_max, t_min=args.t_min, anneal=args.anneal, choice_scale=args.choice_scale,
                tau_max=args.tau_max,
                tau_min=args.tau_min, gumbel_hard=args.gumbel_hard, topology_warmup_data=args.topology_warmup_data,
                arc_learning_rate=args.arch_lr, arc_betas=_adam_betas(args.arch_betas, "--arch-betas"),
                arc_weight_decay=args.arch_weight_decay,
                topology_betas=_adam_betas(args.topology_betas, "--topology-betas"),
                gradient_clip_val=args.grad_clip)


# ----------------------------------------------------------------------------- benchmark rows
def _one_level_update(module: StagedModule) -> dict[str, Any]:
    """In the topology search, DOTS' step is one one-level update (one forward and backward of the
    pruned supernet on one batch); the module's ``training_step`` makes two, one per bilevel half,
    so that an epoch covers the full training set. ``step`` times one, ``step_pair`` the two."""
    def one(batch: Any, batch_idx: int) -> Any:
        loss = module.one_level_step(batch["train"], batch_idx)
        for p in module.arch_parameters():
            p.grad = None
        return loss

    original = type(module).training_step.__get__(module)
    return {"step": one, "step_pair": original}


def _enter_topology_search(module: StagedModule) -> None:
    """Prune as after a real op search: seeded random op-search weights give each edge typical
    survivors (any non-parametric op with any parametric one); the published zero initialisation
    would keep none + sep_conv_3x3 on every edge, the cheapest case."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weights in module.survivor_modules():
            for p in weights.search_parameters():
                p.copy_(torch.randn(p.shape, generator=generator))
    module.force_stage("topology_search")


def bench_variants(method: str) -> list[dict[str, Any]]:
    """``nni-decouple bench`` rows: DOTS' two search stages against NNI's DARTS (issue targets)."""
    return [
        {"name": "op", "help": "op-search stage: first-order bilevel, grouped softmax, all ops",
         "setup": lambda module: module.force_stage("op_search"), "targets": {"time_step": 1.05}},
        {"name": "topology", "help": "topology-search stage: one one-level update on the pruned supernet (2 ops/edge)",
         "setup": _enter_topology_search, "parts": _one_level_update,
         "targets": {"time_step": 0.15}},
    ]
