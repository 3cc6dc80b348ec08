"""Axis "topology": a fixed search path (eDARTS), and its derivation.

The eDARTS poster evaluates 180 cell configurations with fixed ops, finds that the cell topology
has a substantial effect on accuracy, concludes "we can search only along good cells", and shows
eDARTS' supernet as "a fixed search path". Our reading: fix which edges each node takes (the
path) and search only the ops on those edges. Edges off the path weigh a constant 0, so
:class:`~nni_decouple.search.cell.DecoupledCell` never runs their ops: a path with two inputs per
node evaluates 2N edges instead of N(N+3)/2 (8 instead of 14 with N = 4).

A path is a list, one entry per intermediate node, of its input ids (0, 1 are the cell inputs,
node ``j`` is id ``j``): ``[[0, 1], [0, 2], ...]``, on the CLI ``'0,1;0,2;...'``, or a name:

- ``full``: every edge (no fixed path; DARTS' top-2 derivation applies);
- ``inputs``: every node takes both cell inputs (c_{k-2}, c_{k-1});
- ``chain``: node ``j`` takes its two predecessors ``j-2, j-1`` (a deep, sequential cell).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ...errors import ConfigError
from ...models.genotype import NUM_INPUTS, CellGenotype
from ...spaces.cell import CellSpec
from ..derive import SupernetCell, best_ops, derive_topk, register_derive
from ..graph import CellGraph
from . import Topology, register_topology

Path = list[list[int]]
PathSpec = str | Sequence[Sequence[int]] | None

#: Named paths, built for a number of intermediate nodes.
PATHS: dict[str, Callable[[int], Path | None]] = {
    "full": lambda n: None,
    "inputs": lambda n: [[0, 1] for _ in range(n)],
    "chain": lambda n: [[j - 2, j - 1] for j in range(NUM_INPUTS, NUM_INPUTS + n)],
}


def parse_path(spec: PathSpec, num_nodes: int) -> Path | None:
    """A path for ``num_nodes`` nodes from a name, ``'0,1;0,2;...'`` or lists; ``None`` is ``full``."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec in PATHS:
            return PATHS[spec](num_nodes)
        try:
            spec = [[int(s) for s in node.split(",") if s.strip()] for node in spec.split(";")]
        except ValueError:
            raise ConfigError(f"--path {spec!r}: expected one of {', '.join(PATHS)} or input ids per node such as "
                              f"'0,1;0,2;1,3;0,4'") from None
    path = [sorted({int(i) for i in node}) for node in spec]
    if len(path) != num_nodes:
        raise ConfigError(f"--path gives inputs for {len(path)} nodes but the cell has {num_nodes}: one "
                          f"';'-separated entry per node")
    for j, sources in zip(range(NUM_INPUTS, NUM_INPUTS + num_nodes), path, strict=True):
        if not sources or any(not 0 <= i < j for i in sources):
            raise ConfigError(f"--path: node {j} must take at least one input among 0..{j - 1}, got {sources}")
    return path


class FixedPathTopology(Topology):
    """Constant edge weights: 1 on the path, 0 elsewhere (no parameters, nothing to learn)."""

    def __init__(self, graph: CellGraph, path: Path) -> None:
        super().__init__(graph)
        mask = torch.zeros(graph.num_edges)
        for j, sources in zip(graph.node_ids, path, strict=True):
            for i in sources:
                mask[graph.index(i, j)] = 1.0
        self.register_buffer("mask", mask)

    def forward(self) -> torch.Tensor:
        return self.mask


@register_topology("path")
def _path(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any],
          path: PathSpec | Mapping[str, PathSpec] = None) -> Topology:
    """``path`` for every cell, or ``{'normal': ..., 'reduce': ...}`` for each cell type."""
    if isinstance(path, Mapping):
        path = path.get("reduce" if spec.reduction else "normal")
    resolved = parse_path(path, graph.num_nodes)
    return Topology(graph) if resolved is None else FixedPathTopology(graph, resolved)


@register_derive("path")
def derive_path(cell: SupernetCell, k: int = 2) -> CellGenotype:
    """Every edge of the fixed path, each with its strongest op (never ``none``); without a path,
    DARTS' top-``k``."""
    if not isinstance(cell.topology, FixedPathTopology):
        return derive_topk(cell, k)
    with torch.no_grad():
        _, names = best_ops(cell.edge_op_weights(), cell.spec.op_names)
        on_path = cell.edge_weights()
    nodes = [[(names[e], cell.graph.edges[e][0]) for e in cell.graph.in_edges(j) if float(on_path[e]) > 0]
             for j in cell.graph.node_ids]
    return CellGenotype.from_edges(nodes)
