"""Stretchable Cells' derivation: every node keeps the edges of its argmax code.

With the output-edge topology (:class:`~..topology.output.OutputTopology`) node ``i`` keeps an edge
to each successor in its argmax code; with the input-edge ablation
(:class:`~..topology.input.InputCombinationTopology`) node ``j`` keeps its argmax input combination.
Each kept edge takes its strongest op (never one in ``exclude``; the space has no ``none``).

Nodes that end up with no input are dropped, and so are the edges leaving them (a dropped node has
no value); this cascades in one pass because edges only go forward. Every node that keeps an input
is concatenated into the cell output, exactly as every node is concatenated in the supernet: a
node whose argmax code is empty is a leaf, not a dead node. A derived cell may therefore have fewer
nodes than the supernet and any in-degree; the network builder builds only what reaches the output.

Registered entry: ``stretchable`` (option ``exclude``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...errors import ConfigError
from ...models.genotype import NUM_INPUTS, CellGenotype
from . import SupernetCell, best_ops, register_derive


def kept_edges(cell: SupernetCell) -> set[int]:
    """Indices of the edges the argmax codes (or argmax input combinations) keep."""
    topology = cell.topology
    if hasattr(topology, "kept_edges"):
        return set(topology.kept_edges())
    if hasattr(topology, "best_combination"):
        return {cell.graph.index(source, j) for j in cell.graph.node_ids for source in topology.best_combination(j)}
    raise ConfigError(f"the 'stretchable' derivation needs a topology over edge combinations (output_any, "
                      f"output_pairs, input_pairs or input_any), but cell {cell.label!r} has "
                      f"{type(topology).__name__}")


@register_derive("stretchable")
def derive_stretchable(cell: SupernetCell, exclude: Sequence[str] = ("none",)) -> CellGenotype:
    graph = cell.graph
    kept = kept_edges(cell)
    with torch.no_grad():
        _, names = best_ops(cell.edge_op_weights().detach(), cell.spec.op_names, tuple(exclude))
    alive = set(range(NUM_INPUTS))
    nodes: list[list[tuple[str, int]]] = []
    for j in graph.node_ids:
        inputs = [e for e in graph.in_edges(j) if e in kept and graph.edges[e][0] in alive]
        if inputs:
            alive.add(j)
        nodes.append([(names[e], graph.edges[e][0]) for e in inputs])
    if len(alive) == NUM_INPUTS:
        # Degenerate: no code reaches any node (r(beta) exists to prevent it). Rather than fail at the end
        # of a search, give the first node its strongest input edge by topology weight.
        with torch.no_grad():
            weights = cell.edge_weights()
        first = list(graph.in_edges(graph.node_ids.start))
        e = max(first, key=lambda k: float(weights[k])) if weights is not None else first[0]
        nodes[0] = [(names[e], graph.edges[e][0])]
    return CellGenotype.from_edges(nodes)
