"""Op weights "factorised": DNAS' decoupled architecture weights (Xu & He, CVPRW 2021, Eq. 4-5).

A global (per-layer) search over L cells with C connections (edges) of Op candidate ops each
would need an ``L x C x Op`` tensor. DNAS factorises it as

    psi[k, i, j] = sigma_a(alpha[i, j]) * sigma_b(beta[k, :])[i] * sigma_g(gamma[k, j])

with ``alpha`` [C, Op] (connection-operation, shared by every layer), ``beta`` [L, C]
(layer-connection) and ``gamma`` [L, Op] (layer-operation): ``L*C + L*Op + C*Op`` parameters.
The connection index ``i`` is the edge index of :class:`~nni_decouple.search.graph.CellGraph`
(``C = 14`` with 4 nodes: the paper's "14 connections"); ``k`` is the layer, i.e. the cell label.
Defaults follow the paper's search phase: ``sigma_a = sigmoid``, ``sigma_b = softmax`` over the C
connections of the layer, ``sigma_g = sigmoid``. ``psi`` multiplies the op outputs directly
(Eq. 5): there is no further normalisation.

The connection factor ``sigma_b(beta[k])[i]`` weighs connection ``i`` as a whole: the cell
multiplies the entire edge output by it (:meth:`FactorisedWeights.split`), and the ops by
``sigma_a(alpha) * sigma_g(gamma)`` only. On a full-channel edge this is the same sum as ``psi``;
on a PC-DARTS partial-channel edge (:mod:`..edges.partial`) it also scales the ``(K-1)/K``
bypassed channels, as PC-DARTS' edge weight does, so a connection switched off by ``beta`` sends
nothing at all (scaling only the sampled ``C/K`` channels left the rest entering at weight 1).

One :class:`FactorisedWeights` module exists per label (per layer with ``sharing='layer'``) and
owns that layer's ``beta`` and ``gamma``; all of them share one :class:`SharedAlpha`, created by
the first cell and kept in the mutation memo under ``dnas/alpha``.

The regulariser is FairDARTS' zero-one loss, ``-w01 * mean((s - 0.5)^2)`` over the
sigmoid-activated factors ``s`` (``alpha`` and every layer's ``gamma`` by default, one mean over
all of their entries, as FairDARTS takes one mean over all its sigmoid weights). ``beta`` is a
softmax (a distribution over connections, not an on/off gate), so it is not a target by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ...spaces.cell import CellSpec
from ..graph import CellGraph
from . import OpWeights, register_weights

#: Activations a factor may use: ``sigmoid`` (independent gates), ``softmax`` (a distribution
#: over the factor's last axis), ``identity`` (raw values; for ablations).
ACTIVATIONS = ("sigmoid", "softmax", "identity")
#: Where ``softmax`` normalises ``beta``: over all C connections of a layer (``cell``, Eq. 4) or
#: over the input connections of each node (``node``, PC-DARTS' edge normalisation).
BETA_SCOPES = ("cell", "node")
ZERO_ONE_TARGETS = ("alpha", "gamma", "beta")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not supported: choose one of {', '.join(choices)}")


def activate(x: torch.Tensor, name: str) -> torch.Tensor:
    """Apply activation ``name`` (softmax over the last axis)."""
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "softmax":
        return torch.softmax(x, dim=-1)
    return x


class SharedAlpha(nn.Module):
    """The connection-operation weights ``alpha`` [C, Op], one tensor for every layer."""

    def __init__(self, num_edges: int, num_ops: int, init_scale: float = 1e-3) -> None:
        super().__init__()
        self.alpha = nn.Parameter(init_scale * torch.randn(num_edges, num_ops))


class ZeroOneCount:
    """How many sigmoid weights the zero-one loss averages over, supernet-wide.

    Every layer adds its targeted entries when it is built (the owner of an alpha adds alpha's), so
    each layer can scale its share to one mean over all of them without knowing the others.
    """

    def __init__(self) -> None:
        self.size = 0


class FactorisedWeights(OpWeights):
    """One layer's op weights ``psi[k] = sigma_a(alpha) * sigma_b(beta[k])[:, None] * sigma_g(gamma[k])``.

    Args:
        graph, op_names: the cell's edges and candidate ops.
        shared: the :class:`SharedAlpha` of the supernet (``alpha`` [C, Op]).
        sigma_alpha, sigma_beta, sigma_gamma: activations of the three factors (see :data:`ACTIVATIONS`).
        beta_scope: ``cell`` (softmax over all C connections, Eq. 4) or ``node`` (per-node softmax).
        w01: weight of the zero-one loss (FairDARTS: 10); 0 disables it.
        zero_one: the factors the zero-one loss acts on; each must be sigmoid-activated.
        init_scale: ``beta`` and ``gamma`` start at ``init_scale * N(0, 1)`` (DARTS' 1e-3).
        owner: whether this layer adds ``alpha``'s share of the zero-one loss (the first layer does).
        count: the supernet-wide :class:`ZeroOneCount` (a private one when not given).
    """

    def __init__(self, graph: CellGraph, op_names: tuple[str, ...], shared: SharedAlpha, *,
                 sigma_alpha: str = "sigmoid", sigma_beta: str = "softmax", sigma_gamma: str = "sigmoid",
                 beta_scope: str = "cell", w01: float = 10.0, zero_one: Sequence[str] = ("alpha", "gamma"),
                 init_scale: float = 1e-3, owner: bool = False, count: ZeroOneCount | None = None) -> None:
        super().__init__(graph, op_names)
        for name, value in (("sigma_alpha", sigma_alpha), ("sigma_beta", sigma_beta), ("sigma_gamma", sigma_gamma)):
            _check_choice(name, value, ACTIVATIONS)
        _check_choice("beta_scope", beta_scope, BETA_SCOPES)
        zero_one = tuple(zero_one)
        for target in zero_one:
            _check_choice("zero_one target", target, ZERO_ONE_TARGETS)
        sigmas = {"alpha": sigma_alpha, "beta": sigma_beta, "gamma": sigma_gamma}
        if w01 < 0:
            raise ConfigError(f"w01 must be >= 0 (FairDARTS uses 10), got {w01}")
        if w01 > 0:
            bad = [t for t in zero_one if sigmas[t] != "sigmoid"]
            if bad:
                raise ConfigError(
                    f"the zero-one loss pushes sigmoid weights to 0 or 1, but {', '.join(bad)} "
                    f"{'is' if len(bad) == 1 else 'are'} not sigmoid-activated; drop {', '.join(bad)} from the "
                    f"zero-one targets, make {'it' if len(bad) == 1 else 'them'} sigmoid, or set w01 to 0")
        if tuple(shared.alpha.shape) != (graph.num_edges, len(op_names)):
            raise ConfigError(
                f"DNAS shares alpha [C, Op] across layers, but this cell has {graph.num_edges} connections and "
                f"{len(op_names)} ops while alpha is {list(shared.alpha.shape)}: every cell needs the same nodes "
                f"and ops")
        self.shared = shared
        self.beta = nn.Parameter(init_scale * torch.randn(graph.num_edges))
        self.gamma = nn.Parameter(init_scale * torch.randn(len(op_names)))
        self.sigma_alpha, self.sigma_beta, self.sigma_gamma = sigma_alpha, sigma_beta, sigma_gamma
        self.beta_scope = beta_scope
        self.w01, self.zero_one, self.owner = float(w01), zero_one, owner
        self.count = count if count is not None else ZeroOneCount()
        sizes = {"alpha": shared.alpha.numel() if owner else 0, "beta": self.beta.numel(), "gamma": self.gamma.numel()}
        self.count.size += sum(sizes[t] for t in zero_one)

    @property
    def alpha(self) -> nn.Parameter:
        return self.shared.alpha

    # ------------------------------------------------------------------ factors
    def alpha_weights(self) -> torch.Tensor:
        """``sigma_a(alpha)`` [C, Op]."""
        return activate(self.alpha, self.sigma_alpha)

    def beta_weights(self) -> torch.Tensor:
        """``sigma_b(beta[k])`` [C]: this layer's weight of every connection."""
        if self.sigma_beta != "softmax" or self.beta_scope == "cell":
            return activate(self.beta, self.sigma_beta)
        return torch.cat([torch.softmax(self.beta[list(self.graph.in_edges(j))], dim=0) for j in self.graph.node_ids])

    def gamma_weights(self) -> torch.Tensor:
        """``sigma_g(gamma[k])`` [Op]: this layer's weight of every op."""
        return activate(self.gamma, self.sigma_gamma)

    def op_factor(self) -> torch.Tensor:
        """``sigma_a(alpha) * sigma_g(gamma[k])`` [C, Op]: psi without the connection factor (each
        entry in [0, 1] with sigmoids), which threshold derivation compares with its threshold."""
        return self.alpha_weights() * self.gamma_weights()[None, :]

    def forward(self) -> torch.Tensor:
        """``psi[k]`` [C, Op] (Eq. 4)."""
        return self.op_factor() * self.beta_weights()[:, None]

    def split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sigma_a(alpha) * sigma_g(gamma[k]) [C, Op], sigma_b(beta[k]) [C])``: the connection factor
        multiplies the whole edge (module docstring), the rest the ops."""
        return self.op_factor(), self.beta_weights()

    # ------------------------------------------------------------------ zero-one loss
    def regularizer(self) -> torch.Tensor | None:
        """This layer's share of ``-w01 * mean((s - 0.5)^2)`` over all targeted sigmoid weights; the
        shares of all layers sum to the FairDARTS loss over the whole supernet."""
        if self.w01 == 0 or not self.zero_one:
            return None
        factors = {"gamma": self.gamma_weights(), "beta": self.beta_weights()}
        terms = [((factors[t] - 0.5) ** 2).sum() for t in self.zero_one if t != "alpha"]
        if self.owner and "alpha" in self.zero_one:
            terms.append(((self.alpha_weights() - 0.5) ** 2).sum())
        if not terms:
            return None
        return -self.w01 * torch.stack(terms).sum() / self.count.size


#: Memo key of the shared alpha (``dnas/alpha``, or ``dnas/alpha/normal`` / ``.../reduce``).
ALPHA_KEY = "dnas/alpha"


@register_weights("factorised")
def _factorised(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], *, alpha_sharing: str = "all",
                init_scale: float = 1e-3, **options: Any) -> FactorisedWeights:
    """``alpha_sharing='all'`` (Eq. 4: one alpha for every layer) or ``'type'`` (one per cell type)."""
    _check_choice("alpha_sharing", alpha_sharing, ("all", "type"))
    key = ALPHA_KEY if alpha_sharing == "all" else f"{ALPHA_KEY}/{'reduce' if spec.reduction else 'normal'}"
    shared = memo.get(key)
    owner = shared is None
    if shared is None:
        shared = memo[key] = SharedAlpha(graph.num_edges, len(spec.op_names), init_scale)
    count = memo.setdefault("dnas/zero_one_count", ZeroOneCount())
    return FactorisedWeights(graph, spec.op_names, shared, init_scale=init_scale, owner=owner, count=count,
                             **options)
