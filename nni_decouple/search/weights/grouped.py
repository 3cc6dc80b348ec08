"""Group-based op weights (DOTS "Method 2"): one softmax per op group on every edge.

DOTS splits the DARTS ops into a non-parametric group ``{none, max_pool, avg_pool, skip}`` and a
parametric group ``{sep3, sep5, dil3, dil5}``. Each edge has one ``alpha`` per op and each group its
own ``softmax(alpha / T)``; the edge's op weights are the groups' distributions side by side, so
the two groups do not compete (DARTS' parametric ops lose to skip connections early on; here the
best of each group survives to the topology stage, see :mod:`.staged`).

Registered entry: ``grouped`` (options ``groups``, ``temperature``, ``init_scale``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ...models.ops import is_parametric
from ...spaces.cell import CellSpec
from ..graph import CellGraph
from . import OpWeights, register_weights

Groups = tuple[tuple[int, ...], ...]


def op_groups(op_names: Sequence[str], groups: str | Sequence[Sequence[str]] = "parametric") -> Groups:
    """Op indices per group, in the cell's op order; empty groups are dropped.

    ``groups="parametric"`` is DOTS' split (non-parametric ops, then parametric ops, decided by
    :func:`nni_decouple.models.ops.is_parametric`); ``"none"`` puts every op in one group (plain softmax);
    an explicit list of name lists must cover every op exactly once.
    """
    names = list(op_names)
    if groups == "parametric":
        split = ([k for k, n in enumerate(names) if not is_parametric(n)],
                 [k for k, n in enumerate(names) if is_parametric(n)])
        return tuple(tuple(g) for g in split if g)
    if groups == "none":
        return (tuple(range(len(names))),)
    if isinstance(groups, str):
        raise ConfigError(f"unknown op grouping {groups!r}: use 'parametric', 'none' or a list of op-name lists")
    out = []
    seen: list[str] = []
    for group in groups:
        missing = [n for n in group if n not in names]
        if missing:
            raise ConfigError(f"op group {list(group)} names {missing}, which are not in the op set {names}")
        seen.extend(group)
        out.append(tuple(sorted(names.index(n) for n in group)))
    if sorted(seen) != sorted(names):
        raise ConfigError(f"op groups {[list(g) for g in groups]} must cover each op of {names} exactly once")
    return tuple(g for g in out if g)


class GroupedSoftmaxWeights(OpWeights):
    """``w[e, g] = softmax(alpha[e, g] / T)`` separately for every group ``g`` of op indices."""

    def __init__(self, graph: CellGraph, op_names: tuple[str, ...],
                 groups: str | Sequence[Sequence[str]] = "parametric", temperature: float = 1.0,
                 init_scale: float = 0.0) -> None:
        super().__init__(graph, op_names)
        self.groups: Groups = op_groups(op_names, groups)
        self.temperature = float(temperature)
        # The public DOTS code starts alpha at exactly 0 (1e-3 * zeros); init_scale > 0 adds noise.
        self.alpha = nn.Parameter(init_scale * torch.randn(graph.num_edges, len(op_names)))
        for g, members in enumerate(self.groups):
            self.register_buffer(f"group_{g}", torch.tensor(members, dtype=torch.long), persistent=False)
        order = [k for members in self.groups for k in members]
        # Column k of the groups laid side by side is op order[k]; this undoes that permutation.
        self.register_buffer("inverse", torch.tensor([order.index(k) for k in range(len(op_names))]),
                             persistent=False)

    def group_index(self, g: int) -> torch.Tensor:
        return getattr(self, f"group_{g}")

    def forward(self) -> torch.Tensor:
        if len(self.groups) == 1:
            return torch.softmax(self.alpha / self.temperature, dim=-1)
        parts = [torch.softmax(self.alpha[:, self.group_index(g)] / self.temperature, dim=-1)
                 for g in range(len(self.groups))]
        return torch.cat(parts, dim=1)[:, self.inverse]

    def group_argmax(self) -> torch.Tensor:
        """``[num_edges, num_groups]``: per edge, the index (into the op list) of each group's best op."""
        with torch.no_grad():
            return torch.stack([self.group_index(g)[self.alpha[:, self.group_index(g)].argmax(dim=-1)]
                                for g in range(len(self.groups))], dim=1)


@register_weights("grouped")
def _grouped(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], **options: Any) -> OpWeights:
    return GroupedSoftmaxWeights(graph, spec.op_names, **options)
