"""DNAS (Xu & He, "DNAS: A Decoupled Global Neural Architecture Search Method", CVPRW 2021).

Global search: every layer has its own cell (``sharing='layer'``), and the ``L x C x Op``
architecture tensor is factorised into ``alpha`` [C, Op] (shared), ``beta`` [L, C] and ``gamma``
[L, Op] (:mod:`~nni_decouple.search.weights.factorised`). The search uses PC-DARTS' partial channel
connections (K = 4, :mod:`~nni_decouple.search.edges.partial`), FairDARTS' zero-one loss (weight
10), skip-connection drop 0.2, DARTS' first-order bilevel schedule and hyperparameters, and derives
every layer's cell on its own ``psi[k]``. The paper's baseline (unfactorised per-layer DARTS
weights, ``L*C*Op`` parameters, with or without partial channels) is ``weights='unfactorised'``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..search.edges.partial import partial_channel_edges
from ..search.graph import CellGraph
from ..search.weights.factorised import FactorisedWeights, SharedAlpha
from .base import DecoupledStrategy

#: ``weights`` aliases: the paper's method and its baseline.
WEIGHT_ALIASES = {"factorised": "factorised", "unfactorised": "softmax"}


class DNAS(DecoupledStrategy):
    """DNAS with the paper's defaults; every choice is a parameter.

    Args:
        weights: ``factorised`` (DNAS' psi, Eq. 4), ``unfactorised`` (per-layer softmax alpha, the
            paper's PC-DARTS/DARTS global baseline), or any registered op-weight name.
        partial_k: PC-DARTS channel proportion K (1: full channels).
        skip_drop: dropout rate on skip connections during search (paper: 0.2).
        w01: weight of FairDARTS' zero-one loss on the sigmoid factors (FairDARTS: 10).
        sigma_alpha, sigma_beta, sigma_gamma: activations of the three factors (sigmoid, softmax, sigmoid).
        beta_scope: ``cell`` (softmax of beta over all connections of a layer, Eq. 4) or ``node``.
        alpha_sharing: ``all`` (one alpha for every layer, Eq. 4) or ``type`` (one per cell type).
        zero_one: the factors the zero-one loss acts on (``alpha``, ``gamma``; ``beta`` if sigmoid).
        edge_norm: add PC-DARTS' edge normalisation as a topology (off: in DNAS beta weighs connections).
        derive: ``top2`` (DARTS on psi, default) or ``threshold`` (FairDARTS' 0.85 rule on the op factor).
        derive_options: e.g. ``{'threshold': 0.85, 'k': 2}``.
        init_scale: initial architecture parameters are ``init_scale * N(0, 1)``.
        **kwargs: :class:`DecoupledStrategy` / NNI DARTS options (``arc_learning_rate``, ...).

    The space must give every layer its own cell (``CellSpace(sharing='layer')``): DNAS is a global
    search, and ``beta``/``gamma`` are per layer.
    """

    space_sharing = "layer"
    space_what = "DNAS (a global search: one cell per layer)"

    def __init__(self, *, weights: str = "factorised", partial_k: int = 4, skip_drop: float = 0.2,
                 w01: float = 10.0, sigma_alpha: str = "sigmoid", sigma_beta: str = "softmax",
                 sigma_gamma: str = "sigmoid", beta_scope: str = "cell", alpha_sharing: str = "all",
                 zero_one: Sequence[str] = ("alpha", "gamma"), edge_norm: bool = False, derive: str = "top2",
                 derive_options: dict[str, Any] | None = None, init_scale: float = 1e-3, **kwargs: Any) -> None:
        name = WEIGHT_ALIASES.get(weights, weights)
        if name == "factorised":
            weights_options = dict(sigma_alpha=sigma_alpha, sigma_beta=sigma_beta, sigma_gamma=sigma_gamma,
                                   beta_scope=beta_scope, alpha_sharing=alpha_sharing, w01=w01,
                                   zero_one=tuple(zero_one), init_scale=init_scale)
        elif name in ("softmax", "sigmoid"):
            weights_options = dict(init_scale=init_scale)
        else:
            weights_options = {}
        kwargs.setdefault("weights_options", weights_options)
        super().__init__(weights=name, topology="edge_norm" if edge_norm else "none", derive=derive,
                         derive_options=derive_options, edge_factory=partial_channel_edges(partial_k, skip_drop),
                         **kwargs)
        self.partial_k, self.skip_drop, self.w01 = partial_k, skip_drop, w01
        if name == "factorised":  # fail now, not in the middle of building the supernet
            FactorisedWeights(CellGraph(1), ("skip_connect",), SharedAlpha(2, 1), **{
                k: v for k, v in weights_options.items() if k not in ("alpha_sharing",)})
            if alpha_sharing not in ("all", "type"):
                raise ConfigError(f"alpha_sharing={alpha_sharing!r} is not supported: choose one of all, type")


# ----------------------------------------------------------------------------- CLI
def build(args: argparse.Namespace) -> DNAS:
    zero_one = tuple(t.strip() for t in str(args.zero_one).split(",") if t.strip())
    derive_options = {"threshold": args.threshold} if args.derive == "threshold" else None
    return DNAS(weights=args.weights, partial_k=args.partial_k, skip_drop=args.skip_drop, w01=args.w01,
                zero_one=zero_one, sigma_alpha=args.sigma_alpha, sigma_beta=args.sigma_beta,
                sigma_gamma=args.sigma_gamma, beta_scope=args.beta_scope, alpha_sharing=args.alpha_sharing,
                edge_norm=args.edge_norm, derive=args.derive, derive_options=derive_options,
                arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip, warmup_epochs=args.warmup_epochs)


def bench_variants(method: str) -> list[dict[str, Any]]:
    """Rows of ``nni-decouple bench``: issue 7's claim is K = 4 against K = 1 on the same global
    space (step time <= 0.6x, peak memory <= 0.5x), plus the unfactorised baseline."""
    return [
        {"name": "k1", "help": "full channels (K = 1)", "args": {"partial_k": 1}},
        {"name": "k4", "help": "partial channels (K = 4)", "args": {"partial_k": 4}, "reference": f"{method}[k1]",
         "targets": {"time_step": 0.6, "peak_rss_delta_mb": 0.5}},
        {"name": "unfactorised", "help": "per-layer softmax alpha (L*C*Op), K = 4: the paper's baseline",
         "args": {"weights": "unfactorised"}},
    ]
