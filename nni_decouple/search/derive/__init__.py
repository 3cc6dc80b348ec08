"""Axis "derive": supernet cell -> :class:`~nni_decouple.models.genotype.CellGenotype`.

A deriver is ``derive(cell, **options) -> CellGenotype`` where ``cell`` is a
:class:`~nni_decouple.search.cell.DecoupledCell`, seen through :class:`SupernetCell` (what a
deriver may read: its op weights, topology and graph), so that this axis does not import the cell
that calls it. New rules register with :func:`register_derive`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from ...models.genotype import CellGenotype
from ...spaces.cell import CellSpec
from ..graph import CellGraph
from ..topology import Topology
from ..weights import OpWeights


class SupernetCell(Protocol):
    """What a deriver reads of a supernet cell (:class:`~nni_decouple.search.cell.DecoupledCell`)."""

    spec: CellSpec
    graph: CellGraph
    op_weights: OpWeights
    topology: Topology
    op_weight_override: torch.Tensor | None

    @property
    def label(self) -> str: ...

    def edge_op_weights(self) -> torch.Tensor:
        """``[num_edges, num_ops]`` op weights."""
        ...

    def edge_weights(self) -> torch.Tensor | None:
        """``[num_edges]`` topology weights, or ``None``."""
        ...


Deriver = Callable[..., CellGenotype]
DERIVES: dict[str, Deriver] = {}


def register_derive(name: str) -> Callable[[Deriver], Deriver]:
    def _register(fn: Deriver) -> Deriver:
        DERIVES[name] = fn
        return fn

    return _register


def best_ops(weights: torch.Tensor, op_names: tuple[str, ...], exclude: tuple[str, ...] = ("none",),
             ) -> tuple[torch.Tensor, list[str]]:
    """Per edge: the weight and name of the strongest op, never one in ``exclude``."""
    mask = torch.tensor([name in exclude for name in op_names], device=weights.device)
    if bool(mask.all()):
        raise ValueError(f"every op of {op_names} is excluded from derivation")
    masked = weights.masked_fill(mask, float("-inf"))
    strength, index = masked.max(dim=-1)
    return strength, [op_names[int(i)] for i in index]


@register_derive("top2")
def derive_topk(cell: SupernetCell, k: int = 2) -> CellGenotype:
    """DARTS: each node keeps its ``k`` strongest input edges (an edge's strength is its best
    non-``none`` op weight, times its topology weight when the method has one), each with that op."""
    with torch.no_grad():
        weights = cell.edge_op_weights()
        edge_weights = cell.edge_weights()
        strength, names = best_ops(weights, cell.spec.op_names)
        if edge_weights is not None:
            strength = strength * edge_weights
    return strongest_inputs(cell, strength, names, k)


def strongest_inputs(cell: SupernetCell, strength: torch.Tensor, names: list[str], k: int) -> CellGenotype:
    """Each node keeps its ``k`` input edges of largest ``strength`` (``[num_edges]``), edge ``e`` with
    op ``names[e]``: DARTS' top-k rule, shared by the derivations that rank edges this way."""
    nodes = []
    for j in cell.graph.node_ids:
        in_edges = list(cell.graph.in_edges(j))
        ranked = sorted(in_edges, key=lambda e: -float(strength[e]))[: min(k, len(in_edges))]
        nodes.append([(names[e], cell.graph.edges[e][0]) for e in sorted(ranked)])
    return CellGenotype.from_edges(nodes)


def derive_options(name: str, options: dict[str, Any] | None) -> tuple[Deriver, dict[str, Any]]:
    from ...errors import ConfigError

    if name not in DERIVES:
        raise ConfigError(f"unknown derivation {name!r}: choose one of {', '.join(DERIVES)}")
    return DERIVES[name], dict(options or {})
