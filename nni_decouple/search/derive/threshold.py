"""Derive "threshold": FairDARTS' sparse threshold rule (Chu et al., ECCV 2020; 0.85).

Each node takes its ``k`` strongest input edges, ranked as :func:`~.derive.derive_topk` ranks them
(best non-``none`` op weight, times the topology weight when there is one); a chosen edge keeps its
best op only if that op's weight reaches ``threshold``. Nodes may thus end with fewer than ``k``
inputs, or none: a node without inputs is left out of the cell's output, and later nodes do not
rank edges from it.

The weight compared with the threshold is the op weight in [0, 1]. A parametrisation whose op
weights carry a connection factor that is not an op gate (DNAS' ``softmax(beta)``, whose entries
are about ``1/C``) exposes ``op_factor()`` on its op-weight module: the op weights without that
factor, which the threshold then applies to.

If no edge of a cell passes, the first node keeps its strongest edge (a cell needs an output) and
a warning says so: the search has not made its sigmoid weights confident yet.
"""

from __future__ import annotations

import warnings

import torch

from ...models.genotype import CellGenotype
from . import SupernetCell, best_ops, register_derive


@register_derive("threshold")
def derive_threshold(cell: SupernetCell, threshold: float = 0.85, k: int = 2) -> CellGenotype:
    op_names = cell.spec.op_names
    with torch.no_grad():
        weights = cell.edge_op_weights()
        edge_weights = cell.edge_weights()
        strength, names = best_ops(weights, op_names)
        if edge_weights is not None:
            strength = strength * edge_weights
        op_factor = getattr(cell.op_weights, "op_factor", None)
        gates = op_factor() if (op_factor is not None and cell.op_weight_override is None) else weights
        gate = [float(gates[e, op_names.index(name)]) for e, name in enumerate(names)]
    graph = cell.graph
    alive = {0, 1}
    nodes: list[list[tuple[str, int]]] = []
    for j in graph.node_ids:
        candidates = [e for e in graph.in_edges(j) if graph.edges[e][0] in alive]
        ranked = sorted(candidates, key=lambda e: -float(strength[e]))[:k]
        node = [(names[e], graph.edges[e][0]) for e in sorted(ranked) if gate[e] >= threshold]
        if node:
            alive.add(j)
        nodes.append(node)
    if not any(nodes):
        first = list(graph.in_edges(graph.node_ids[0]))
        best = max(first, key=lambda e: float(strength[e]))
        nodes[0] = [(names[best], graph.edges[best][0])]
        warnings.warn(f"{cell.label}: no op weight reaches the threshold {threshold}; keeping the strongest edge "
                      f"of node {graph.node_ids[0]} only (search longer, or lower the threshold)", stacklevel=2)
    return CellGenotype.from_edges(nodes)
