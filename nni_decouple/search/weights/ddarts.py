"""Op weights "ddarts": sigmoid(alpha) per cell (FairDARTS' gate), started from scratch or from a
handcrafted network (DARTOpti).

From scratch every cell gets its own alpha, zero at the start (sigmoid 0.5 for every op), as in
the public D-DARTS code. With ``start='resnet18'`` (or another :mod:`nni_decouple.models.handcrafted`
encoding) alpha is 10 on the network's ops and 0 elsewhere (``high``/``low``), and identical cells
of the network share one alpha (``share_identical``, paper Section 4.4 (ii)): the sharing is done
through the supernet-wide memo, so labels stay per layer and every layer still exports its cell.
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ConfigError
from ...models.genotype import CellGenotype
from ...models.handcrafted import Handcrafted, get_handcrafted
from ...spaces.cell import CellSpec
from ..graph import CellGraph
from . import SigmoidWeights, register_weights


def alpha_from_cell(cell: CellGenotype, graph: CellGraph, op_names: tuple[str, ...], high: float = 10.0,
                    low: float = 0.0) -> torch.Tensor:
    """``[num_edges, num_ops]`` alphas that encode ``cell``: ``high`` on its (edge, op) pairs, ``low`` elsewhere
    (edges of nodes the cell does not have included)."""
    if cell.num_nodes > graph.num_nodes:
        raise ConfigError(f"a handcrafted cell with {cell.num_nodes} nodes does not fit a supernet cell of "
                          f"{graph.num_nodes}: search with --nodes {cell.num_nodes}")
    alpha = torch.full((graph.num_edges, len(op_names)), float(low))
    for target, edge in cell.edges():
        if edge.op not in op_names:
            raise ConfigError(f"the handcrafted cell uses {edge.op!r}, which is not in the searched ops "
                              f"({', '.join(op_names)}): search the space S_o (--ops s_o)")
        alpha[graph.index(edge.source, target), op_names.index(edge.op)] = float(high)
    return alpha


def check_layout(start: Handcrafted, spec: CellSpec) -> None:
    """The supernet must have the handcrafted network's layout, or the alphas would land in the wrong cells."""
    if spec.layer >= start.layers:
        raise ConfigError(f"the supernet has more cells than {start.name} ({start.layers}): search with "
                          f"--layers {start.layers}")
    if spec.reduction != (spec.layer in start.reductions):
        raise ConfigError(f"cell {spec.layer} of the supernet {'is' if spec.reduction else 'is not'} a reduction cell, "
                          f"but {start.name} reduces at {list(start.reductions)}: build the space with "
                          f"reductions={list(start.reductions)}")


@register_weights("ddarts")
def ddarts_weights(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], start: str | None = None,
                   share_identical: bool = True, high: float = 10.0, low: float = 0.0,
                   init_scale: float = 0.0) -> SigmoidWeights:
    """One :class:`SigmoidWeights` per cell (per group of identical cells with ``start``)."""
    if start is None:
        weights = SigmoidWeights(graph, spec.op_names, init_scale=init_scale)
        return weights
    network = memo.get("ddarts/start")
    if network is None or network.name != start:
        network = memo["ddarts/start"] = get_handcrafted(start)
    check_layout(network, spec)
    group = network.groups[spec.layer] if share_identical else spec.layer
    key = f"ddarts/alpha/{group}"
    if key not in memo:
        weights = SigmoidWeights(graph, spec.op_names, init_scale=0.0)
        with torch.no_grad():
            weights.alpha.copy_(alpha_from_cell(network.genotype.layers[spec.layer], graph, spec.op_names, high, low))
        memo[key] = weights
    return memo[key]
