"""Op weights of a two-stage search: op search first, then a near-hard choice between survivors.

DOTS decouples the search into an operation stage and a topology stage. During the operation stage
this module simply *is* the op-search parametrisation it wraps (``search``: DOTS' ``grouped``
softmax, DARTS' ``softmax``, GDAS' ``gumbel``, or any registered entry: the paper's "Method 1"
plugs any cell-based op search in front of the topology search). Then :meth:`survivors` picks what
each edge keeps and :meth:`select` freezes that choice:

- ``keep="groups"`` (DOTS "Method 2"): the argmax op of every op group (non-parametric and
  parametric, see :func:`.grouped.op_groups`), e.g. ``{max_pool, sep_conv_3x3}``; ``none``
  may survive in its group, as in the public code (derivation never picks it);
- ``keep=k``: the ``k`` best ops by the search weights, never one in ``exclude`` (``none``): the
  paper's Method 1 keeps the best op of each edge (``k = 1``).

After :meth:`select` the weights are the near-hard choice between an edge's survivors:
``softmax(alpha_choice[e] / (choice_scale * T))`` placed at the surviving ops (zero elsewhere), with
``choice_scale = 1e-3`` and ``T`` annealed by the schedule (the public code's "balance" weights).
The surviving op indices live in the persistent buffer ``kept`` (``-1`` until selection), so a
checkpoint restores the selection and a resumed run continues in the right mode.

Registered entry: ``survivors`` (options ``search``, ``search_options``, ``keep``, ``groups``,
``choice_scale``, ``exclude``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ...spaces.cell import CellSpec
from ..graph import CellGraph
from . import WEIGHTS, OpWeights, register_weights
from .grouped import Groups, op_groups


class SurvivorWeights(OpWeights):
    """``search`` op weights until :meth:`select`, then a near-hard choice between survivors."""

    def __init__(self, graph: CellGraph, op_names: tuple[str, ...], search: OpWeights, keep: str | int = "groups",
                 groups: str | Sequence[Sequence[str]] = "parametric", choice_scale: float = 1e-3,
                 temperature: float = 1.0, exclude: Sequence[str] = ("none",)) -> None:
        super().__init__(graph, op_names)
        self.search = search
        self.choice_scale, self.temperature = float(choice_scale), float(temperature)
        self.exclude = tuple(exclude)
        self.groups: Groups | None = None
        if keep == "groups":
            self.groups = op_groups(op_names, groups)
            k = len(self.groups)
        else:
            try:
                k = int(keep)
            except (TypeError, ValueError):
                raise ConfigError(f"keep must be 'groups' or a number of ops, got {keep!r}") from None
            allowed = [n for n in op_names if n not in self.exclude]
            if not 1 <= k <= len(allowed):
                raise ConfigError(f"cannot keep {k} ops per edge: the op set has {len(allowed)} ops besides "
                                  f"{list(self.exclude)}; keep between 1 and {len(allowed)}")
        self.keep = keep
        self.num_survivors = k
        self.alpha_choice = nn.Parameter(torch.zeros(graph.num_edges, k))  # public code: zeros
        self.register_buffer("kept", torch.full((graph.num_edges, k), -1, dtype=torch.long))

    # ------------------------------------------------------------------ selection
    @property
    def selected(self) -> bool:
        """Whether the survivors have been selected (the topology stage has begun)."""
        return bool(self.kept[0, 0] >= 0)

    def survivors(self) -> torch.Tensor:
        """``[num_edges, k]`` op indices each edge keeps, ranked by the search's :meth:`logits`."""
        with torch.no_grad():
            scores = self.search.logits().detach()
            if self.groups is not None:
                columns = []
                for members in self.groups:
                    index = torch.tensor(members, device=scores.device)
                    columns.append(index[scores[:, index].argmax(dim=-1)])
                return torch.stack(columns, dim=1)
            mask = torch.tensor([n in self.exclude for n in self.op_names], device=scores.device)
            return scores.masked_fill(mask, float("-inf")).topk(self.num_survivors, dim=-1).indices

    def select(self, kept: torch.Tensor | None = None) -> torch.Tensor:
        """Freeze the survivors (default: :meth:`survivors`) and switch to the near-hard choice."""
        kept = self.survivors() if kept is None else kept
        if tuple(kept.shape) != tuple(self.kept.shape):
            raise ValueError(f"survivors must have shape {tuple(self.kept.shape)}, got {tuple(kept.shape)}")
        self.kept.copy_(kept)
        return self.kept

    def kept_mask(self) -> torch.Tensor:
        """``[num_edges, num_ops]`` booleans: the surviving ops (all ``True`` before selection)."""
        if not self.selected:
            return torch.ones(self.graph.num_edges, len(self.op_names), dtype=torch.bool, device=self.kept.device)
        mask = torch.zeros(self.graph.num_edges, len(self.op_names), dtype=torch.bool, device=self.kept.device)
        return mask.scatter(1, self.kept, True)

    # ------------------------------------------------------------------ parameters
    def search_parameters(self) -> list[nn.Parameter]:
        return list(self.search.arch_parameters())

    def choice_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_choice]

    def regularizer(self) -> torch.Tensor | None:
        reg = getattr(self.search, "regularizer", None)
        return reg() if (reg is not None and not self.selected) else None

    # ------------------------------------------------------------------ weights
    def choice_probs(self) -> torch.Tensor:
        """``[num_edges, k]``: ``softmax(alpha_choice / (choice_scale * T))`` over the survivors."""
        return torch.softmax(self.alpha_choice / (self.choice_scale * self.temperature), dim=-1)

    def forward(self) -> torch.Tensor:
        if not self.selected:
            return self.search()
        probs = self.choice_probs()
        return probs.new_zeros(self.graph.num_edges, len(self.op_names)).scatter(1, self.kept, probs)

    def logits(self) -> torch.Tensor:
        if not self.selected:
            return self.search.logits()
        full = self.alpha_choice.new_full((self.graph.num_edges, len(self.op_names)), float("-inf"))
        return full.scatter(1, self.kept, self.alpha_choice)

    def ranking(self) -> torch.Tensor:
        """Finite per-edge op scores for derivation: every survivor ranks above every pruned op;
        survivors rank by ``alpha_choice``, pruned ops by the op search (so a derivation that must
        skip a surviving ``none`` falls back to the other survivor first)."""
        with torch.no_grad():
            base = self.search.logits().detach()
            num_ops = base.shape[-1]
            base_rank = base.argsort(dim=-1).argsort(dim=-1).to(base.dtype) / num_ops  # in [0, 1)
            if not self.selected:
                return base_rank
            choice = torch.softmax(self.alpha_choice.detach(), dim=-1)  # in [0, 1]
            kept_score = base_rank.new_zeros(base_rank.shape).scatter(1, self.kept, 2.0 + choice)
            return torch.where(self.kept_mask(), kept_score, base_rank)


@register_weights("survivors")
def _survivors(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], *, search: str = "grouped",
               search_options: dict[str, Any] | None = None, **options: Any) -> OpWeights:
    from .. import load_all

    load_all()  # the op search may be registered by any module of this package
    if search not in WEIGHTS or search == "survivors":
        choices = ", ".join(n for n in WEIGHTS if n != "survivors")
        raise ConfigError(f"unknown op search {search!r} for the survivors weights: choose one of {choices}")
    inner = WEIGHTS[search](graph, spec, label, memo, **dict(search_options or {}))
    return SurvivorWeights(graph, spec.op_names, inner, **options)
