"""Derive "sparse" and "edge": D-DARTS' threshold rules (FairDARTS' parsing, threshold 0.85).

- ``sparse``: each node ranks all its input edges by their best op weight (times the topology
  weight, if the method has one), takes the top ``k = 2``, and keeps each with that best op only
  if the op weight reaches ``threshold``: 0, 1 or 2 inputs per node, one op per edge.
- ``edge``: every input edge of a node keeps its top ``ops_per_edge = 2`` ops whose weight reaches
  ``threshold``: any number of inputs per node, up to two ops per edge.

The op weight compared with the threshold is the sigmoid gate in [0, 1] (a topology weight, when a
method has one, only ranks the edges of ``sparse``); ``none`` is never kept.
A node left without inputs is dropped, edges that read a dropped node are dropped with it, and
the cell concatenates the nodes that remain, so derived cells have varying numbers of nodes and
edges (the released D-DARTS genotypes do). Unlike the ``threshold`` rule, ``sparse`` ranks all
edges before dropping those of dead nodes, as D-DARTS' parser does. If nothing passes the
threshold the first node keeps its strongest (edge, op), so that the cell still has an output,
and a warning says so.
"""

from __future__ import annotations

import warnings

import torch

from ...errors import ConfigError
from ...models.genotype import CellGenotype
from . import SupernetCell, best_ops, register_derive


def _check(threshold: float, k: int) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"the derivation threshold must be in [0, 1] (sigmoid weights), got {threshold}")
    if k < 1:
        raise ConfigError(f"the derivation must keep at least one input or op, got {k}")


def _weights(cell: SupernetCell) -> tuple[torch.Tensor, torch.Tensor | None]:
    with torch.no_grad():
        weights = cell.edge_op_weights().detach().float().cpu()
        edge_weights = cell.edge_weights()
        if edge_weights is not None:
            edge_weights = edge_weights.detach().float().cpu()
    return weights, edge_weights


def _finish(cell: SupernetCell, picked: list[list[tuple[str, int]]], weights: torch.Tensor,
            edge_weights: torch.Tensor | None, threshold: float) -> CellGenotype:
    """Drop edges from dead nodes (in node order, so drops cascade), then make sure the cell has an output."""
    alive = {0, 1}
    nodes: list[list[tuple[str, int]]] = []
    for j, candidates in zip(cell.graph.node_ids, picked, strict=True):
        node = [(op, src) for op, src in candidates if src in alive]
        if node:
            alive.add(j)
        nodes.append(node)
    if not any(nodes):
        strength, names = best_ops(weights, cell.spec.op_names)
        if edge_weights is not None:
            strength = strength * edge_weights
        first = list(cell.graph.in_edges(cell.graph.node_ids[0]))
        best = max(first, key=lambda e: float(strength[e]))
        nodes[0] = [(names[best], cell.graph.edges[best][0])]
        warnings.warn(f"{cell.label}: no op weight reaches the threshold {threshold}; keeping the strongest edge of "
                      f"node {cell.graph.node_ids[0]} only (search longer, or lower the threshold)", stacklevel=3)
    return CellGenotype.from_edges(nodes)


@register_derive("sparse")
def derive_sparse(cell: SupernetCell, threshold: float = 0.85, k: int = 2) -> CellGenotype:
    """Top-``k`` inputs per node by best op weight, each kept (with that op) if the weight >= ``threshold``."""
    _check(threshold, k)
    weights, edge_weights = _weights(cell)
    strength, names = best_ops(weights, cell.spec.op_names)
    ranked_strength = strength * edge_weights if edge_weights is not None else strength
    picked = []
    for j in cell.graph.node_ids:
        in_edges = list(cell.graph.in_edges(j))
        top = sorted(in_edges, key=lambda e: -float(ranked_strength[e]))[:k]
        picked.append([(names[e], cell.graph.edges[e][0]) for e in sorted(top) if float(strength[e]) >= threshold])
    return _finish(cell, picked, weights, edge_weights, threshold)


@register_derive("edge")
def derive_edge(cell: SupernetCell, threshold: float = 0.85, ops_per_edge: int = 2) -> CellGenotype:
    """Every input edge keeps its top ``ops_per_edge`` ops whose weight >= ``threshold`` (never ``none``)."""
    _check(threshold, ops_per_edge)
    weights, edge_weights = _weights(cell)
    op_names = cell.spec.op_names
    allowed = [k for k, name in enumerate(op_names) if name != "none"]
    picked = []
    for j in cell.graph.node_ids:
        node = []
        for e in cell.graph.in_edges(j):
            top = sorted(allowed, key=lambda k: -float(weights[e, k]))[:ops_per_edge]
            node.extend((op_names[k], cell.graph.edges[e][0]) for k in sorted(top) if float(weights[e, k]) >= threshold)
        picked.append(node)
    return _finish(cell, picked, weights, edge_weights, threshold)
