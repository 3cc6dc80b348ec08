"""The edge list of a DARTS cell, shared by every axis so they index edges the same way.

Edges are ordered by target node, then source: for node ``j`` (ids ``2 .. N+1``) the sources are
``0 .. j-1``. With N = 4 that is 2 + 3 + 4 + 5 = 14 edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..models.genotype import NUM_INPUTS


@dataclass(frozen=True)
class CellGraph:
    num_nodes: int

    @cached_property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """``(source, target)`` of every edge, in the package-wide order."""
        return tuple((i, j) for j in self.node_ids for i in range(j))

    @property
    def node_ids(self) -> range:
        return range(NUM_INPUTS, NUM_INPUTS + self.num_nodes)

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    def in_edges(self, node: int) -> range:
        """Indices (into :attr:`edges`) of the edges entering ``node``."""
        start = sum(range(NUM_INPUTS, node))
        return range(start, start + node)

    def out_edges(self, node: int) -> list[int]:
        """Indices of the edges leaving ``node`` (to later intermediate nodes)."""
        return [e for e, (i, _) in enumerate(self.edges) if i == node]

    def index(self, source: int, target: int) -> int:
        return self.in_edges(target)[source]
