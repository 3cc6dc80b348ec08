"""Axis "topology": how a node weighs its input edges, with parameters of its own.

A :class:`Topology` module returns, on call, a tensor ``[num_edges]`` of edge weights that
multiply each edge's mixed output, or ``None`` when the method has no topology parameters (DARTS,
where the topology is read off the op weights at derivation). New parametrisations register with
:func:`register_topology`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ...spaces.cell import CellSpec
from ..graph import CellGraph


class Topology(nn.Module):
    """Base class: no topology parameters, every edge weighs 1."""

    def __init__(self, graph: CellGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self) -> torch.Tensor | None:
        return None

    def arch_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.parameters()

    def regularizer(self) -> torch.Tensor | None:
        """An extra term for the architecture loss (e.g. Stretchable Cells' r(beta)); none by default."""
        return None


TopologyFactory = Callable[..., Topology]
TOPOLOGIES: dict[str, TopologyFactory] = {}


def register_topology(name: str) -> Callable[[TopologyFactory], TopologyFactory]:
    def _register(factory: TopologyFactory) -> TopologyFactory:
        TOPOLOGIES[name] = factory
        return factory

    return _register


@register_topology("none")
def _none(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], **options: Any) -> Topology:
    return Topology(graph)
