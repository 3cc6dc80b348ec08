"""DOTS derivation: each node its argmax input combination, each chosen edge its argmax op.

The topology decides the edges (``topology.best_combination(node)``, e.g. of
:class:`~..topology.input.InputCombinationTopology`): no edge is chosen for the strength of its op,
which is the coupling DOTS removes. On every chosen edge the op is the best one that is not
``none`` (``exclude``), ranked by the op weights' ``ranking()`` when they have one (the survivors of
:class:`~..weights.staged.SurvivorWeights` first, then the pruned ops) and by ``logits()`` otherwise;
so even an edge whose surviving non-parametric op is ``none`` and whose near-hard choice prefers it
derives its other survivor.

Before the topology stages (DOTS' op stages) the topology is not searched yet: its ``beta`` is
still 0, and its argmax would make every node read inputs 0 and 1. Then (``topology.enabled`` is
false) each node takes its ``k`` strongest input edges by their best op weight, DARTS' rule (``k``:
2, or the smallest combination size the topology admits), as a *preview* of what the op search
prefers; :func:`topology_searched` tells the two apart (the run's history records it).

Registered entry: ``dots`` (option ``exclude``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...errors import ConfigError
from ...models.genotype import CellGenotype
from . import SupernetCell, best_ops, register_derive, strongest_inputs


def op_ranking(cell: SupernetCell) -> torch.Tensor:
    """``[num_edges, num_ops]`` scores to pick each edge's op by (larger is better)."""
    if cell.op_weight_override is not None:
        return cell.op_weight_override.detach()
    ranking = getattr(cell.op_weights, "ranking", None)
    return (ranking() if ranking is not None else cell.op_weights.logits()).detach()


def topology_searched(cell: SupernetCell) -> bool:
    """Whether the cell's topology is being (or has been) searched: false in DOTS' op stages."""
    return bool(getattr(cell.topology, "enabled", True))


@register_derive("dots")
def derive_dots(cell: SupernetCell, exclude: Sequence[str] = ("none",)) -> CellGenotype:
    topology = cell.topology
    if not hasattr(topology, "best_combination"):
        raise ConfigError(f"the 'dots' derivation needs a topology over input-edge combinations (input_pairs or "
                          f"input_any), but cell {cell.label!r} has {type(topology).__name__}")
    with torch.no_grad():
        _, names = best_ops(op_ranking(cell), cell.spec.op_names, tuple(exclude))
    if not topology_searched(cell):  # op stages: a DARTS-rule preview (module docstring)
        with torch.no_grad():
            strength, _ = best_ops(cell.edge_op_weights().detach(), cell.spec.op_names, tuple(exclude))
        sizes = getattr(topology, "sizes", (2,))
        k = 2 if 2 in sizes else min(sizes)
        return strongest_inputs(cell, strength, names, k)
    nodes = [[(names[cell.graph.index(source, j)], source) for source in topology.best_combination(j)]
             for j in cell.graph.node_ids]
    return CellGenotype.from_edges(nodes)
