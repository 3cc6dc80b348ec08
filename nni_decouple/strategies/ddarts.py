"""D-DARTS (Heuillet et al., Pattern Recognition Letters 2023): distributed per-cell search.

One choice per axis: space without ``none`` (7 ops; the 12-op S_o for DARTOpti), one cell per
layer; op weights ``ddarts`` (sigmoid(alpha), per cell, or started from a handcrafted network);
no topology parameters; schedule :class:`~nni_decouple.search.schedules.percell.PerCellModule`
(an optimizer, a cosine schedule and a loss L_T per cell, with the ablation loss); derivation
``sparse`` or ``edge`` at threshold 0.85. Algorithm 1 (deeper networks from the searched cells) is
:func:`nni_decouple.models.deepen.deepen`.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ..models.handcrafted import get_handcrafted
from ..models.ops import resolve_ops
from ..search.schedules.percell import ABLATIONS, DEACTIVATIONS, NORMALISERS, PerCellModule
from .base import DecoupledStrategy
from .methods.ddarts import DERIVES


class DDARTS(DecoupledStrategy):
    """D-DARTS as an NNI one-shot strategy; ``DDARTS()`` is the paper's CIFAR search from scratch.

    Args:
        ablation: ``exact`` (n + 1 forwards per step), ``fast`` (one cell per step, round robin) or
            ``none`` (FairDARTS' L_F only).
        w01: weight of FairDARTS' zero-one loss (paper text 7; public code 9).
        wabl: weight of the ablation loss (paper text 0.5; public code 0.7).
        threshold: op-weight threshold of the derivation (0.85).
        derive: ``sparse`` (top-2 inputs per node) or ``edge`` (top-2 ops per edge).
        start: ``None``/``scratch``, or a handcrafted network (``resnet18``, ``resnet50``, ``xception``)
            whose ops start at alpha = ``start_high`` and the others at ``start_low`` (DARTOpti).
        share_identical: identical cells of the handcrafted network share one alpha (DARTOpti (ii)).
        deactivate: what "without cell i" means for the marginal contributions (``zero`` or ``uniform``).
        normaliser: the ablation loss' denominator: ``bounded`` (max(|mean M|, mean |M|, floor), gradient
            stopped; default), ``stopped`` (|mean M|, gradient stopped) or ``mean`` (|mean M| differentiated,
            which spikes as mean M crosses zero). See docs/ddarts.md.
        normaliser_floor: the smallest ``bounded`` normaliser (1e-2).
        warmup_epochs: epochs of weight training before architecture steps (default: 5 with ``start``, else 0).
    """

    schedule_cls = PerCellModule
    space_sharing = "layer"
    space_what = "D-DARTS (a distributed search: one cell and one optimizer per layer)"

    def __init__(self, *, ablation: str = "exact", w01: float = 7.0, wabl: float = 0.5, threshold: float = 0.85,
                 derive: str = "sparse", start: str | None = None, share_identical: bool = True,
                 start_high: float = 10.0, start_low: float = 0.0, deactivate: str = "zero",
                 normaliser: str = "bounded", normaliser_floor: float = 1e-2,
                 arc_learning_rate: float = 3e-3, arc_learning_rate_min: float = 1e-3,
                 arc_betas: tuple[float, float] = (0.9, 0.999), arc_weight_decay: float = 1e-3,
                 warmup_epochs: int | None = None, gradient_clip_val: float | None = 5.0, **kwargs: Any) -> None:
        if ablation not in ABLATIONS:
            raise ConfigError(f"unknown --ablation {ablation!r}: choose one of {', '.join(ABLATIONS)}")
        if deactivate not in DEACTIVATIONS:
            raise ConfigError(f"unknown --deactivate {deactivate!r}: choose one of {', '.join(DEACTIVATIONS)}")
        if normaliser not in NORMALISERS:
            raise ConfigError(f"unknown --ablation-normaliser {normaliser!r}: choose one of {', '.join(NORMALISERS)}")
        if derive not in DERIVES:
            raise ConfigError(f"unknown D-DARTS derivation {derive!r}: choose one of {', '.join(DERIVES)}")
        if start == "scratch":
            start = None
        self.start = get_handcrafted(start) if start is not None else None
        if warmup_epochs is None:
            warmup_epochs = 5 if start is not None else 0
        super().__init__(
            weights="ddarts",
            weights_options={"start": start, "share_identical": share_identical, "high": start_high,
                             "low": start_low},
            derive=derive, derive_options={"threshold": threshold},
            schedule_options={"arc_betas": tuple(arc_betas), "arc_weight_decay": arc_weight_decay,
                              "arc_learning_rate_min": arc_learning_rate_min, "w01": w01, "wabl": wabl,
                              "ablation": ablation, "deactivate": deactivate, "normaliser": normaliser,
                              "normaliser_floor": normaliser_floor},
            arc_learning_rate=arc_learning_rate, gradient_clip_val=gradient_clip_val, warmup_epochs=warmup_epochs,
            **kwargs,
        )

    def mutate_model(self, model: Any) -> Any:
        if self.start is not None:  # (the sharing is checked by DecoupledStrategy.mutate_model)
            check_space(model, self.start.name)
        return super().mutate_model(model)


def space_options(start: str) -> dict[str, Any]:
    """The search-space options a DARTOpti start fixes: cells, nodes, reductions and the op set S_o."""
    network = get_handcrafted(start)
    return {"layers": network.layers, "nodes": network.nodes, "reductions": list(network.reductions), "ops": "s_o"}


def check_space(space: Any, start: str) -> None:
    """Refuse a space whose layout is not the handcrafted network's (the alphas would land in the wrong cells)."""
    want = space_options(start)
    have = {"layers": getattr(space, "num_layers", None), "nodes": getattr(space, "num_nodes", None),
            "reductions": list(getattr(space, "reductions", ()))}
    wrong = [f"{k} {have[k]} (need {want[k]})" for k in ("layers", "reductions") if have[k] != want[k]]
    if have["nodes"] is None or have["nodes"] < want["nodes"]:
        wrong.append(f"nodes {have['nodes']} (need >= {want['nodes']})")
    ops = set(getattr(space, "op_names", ()))
    missing = sorted(get_handcrafted(start).ops - ops)
    if missing:
        wrong.append(f"ops without {', '.join(missing)} (need s_o)")
    if wrong:
        raise ConfigError(f"--start {start} needs the layout of {start}; the space has {'; '.join(wrong)}: build it as "
                          f"CellSpace(sharing='layer', ops='s_o', layers={want['layers']}, nodes={want['nodes']}, "
                          f"reductions={want['reductions']}) (the CLI does this)")


# ----------------------------------------------------------------------------- CLI
def build(args: argparse.Namespace) -> DDARTS:
    return DDARTS(ablation=args.ablation, w01=args.w01, wabl=args.wabl, threshold=args.threshold, derive=args.derive,
                  start=args.start, share_identical=args.share_identical, deactivate=args.deactivate,
                  normaliser=args.ablation_normaliser, normaliser_floor=args.normaliser_floor,
                  arc_learning_rate=args.arch_lr, arc_learning_rate_min=args.arch_lr_min,
                  warmup_epochs=args.warmup_epochs, gradient_clip_val=args.grad_clip)


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """``--start NET`` fixes the space: NET's cells, nodes and reductions, over S_o."""
    if args.start == "scratch":
        return {}
    want = space_options(args.start)
    want["sharing"] = "layer"
    # Values equal to the parser default (a recipe's included) are replaced; explicit other values are refused.
    parser = getattr(args, "subparser", None)
    for name in ("layers", "nodes", "ops", "sharing"):
        given = getattr(args, name, None)
        default = parser.get_default(name) if parser is not None else given
        value = want[name]
        differs = resolve_ops(given) != resolve_ops(value) if name == "ops" and given is not None else given != value
        if given not in (None, default) and differs:
            raise ConfigError(f"--start {args.start} fixes --{name} {value}, but --{name} {given} was given: "
                              f"drop --{name}")
        setattr(args, name, value)
    return {"reductions": want["reductions"]}


def bench_variants(method: str) -> list[dict[str, Any]]:
    """Rows of ``nni-decouple bench``: the default (exact ablation, n + 1 forwards) and the fast ablation,
    whose whole step the issue wants within 1.5x of a DARTS step."""
    return [
        {"name": "fast", "help": "fast ablation (one cell per step, round robin)", "args": {"ablation": "fast"},
         "targets": {"time_step": 1.5}},
        {"name": "no-ablation", "help": "per-cell FairDARTS loss only (L_F)", "args": {"ablation": "none"}},
    ]

