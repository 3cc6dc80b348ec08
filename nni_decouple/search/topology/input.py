"""Topology over combinations of a node's INPUT edges (DOTS, Gu et al. 2021, Sec. "topology search").

Each intermediate node ``j`` gets one parameter ``beta[j][m]`` per admissible combination ``c_m`` of
its input edges. The node turns them into a distribution ``p_j = softmax(beta[j] / T)`` and an edge's
weight is the summed probability of the combinations that contain it:

    t[(i, j)] = sum_{m : i in c_m} p_j[m]

Computed as one matmul per node with a fixed 0/1 incidence matrix ``[num_combinations, in_degree]``.

Registered entries:

- ``input_pairs``: exactly two input edges per node, as published and as in the public code
  (1 + 3 + 6 + 10 = 20 parameters per cell with 4 nodes);
- ``input_any``: the paper's ``c_m`` sets, any number of edges. The empty set is **excluded**:
  a node must keep at least one input, so a derived cell never has a dangling node and every node
  stays in the concatenation (2^n - 1 combinations for a node with n inputs: 3 + 7 + 15 + 31 = 56
  with 4 nodes). ``min_edges`` / ``max_edges`` narrow the sizes (``min_edges = max_edges = k``
  gives exactly k edges per node).

The module is general: the temperature ``T`` is an attribute a schedule may anneal, ``enabled``
switches it off (``forward`` then returns ``None``, i.e. every edge weighs 1, as in a plain DARTS
supernet; DOTS' operation stages use that), and :meth:`best_combination` is what a derivation
reads. Stretchable Cells' ``--topology input`` ablation reuses it unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ...spaces.cell import CellSpec
from ..graph import CellGraph
from . import Topology, register_topology


def input_combinations(num_inputs: int, sizes: Iterable[int]) -> list[tuple[int, ...]]:
    """All subsets of ``range(num_inputs)`` whose size is in ``sizes``, by size then lexicographic
    (for size 2 this is ``itertools.combinations`` order, the order of the public DOTS code)."""
    return [c for k in sorted(set(sizes)) if 1 <= k <= num_inputs
            for c in itertools.combinations(range(num_inputs), k)]


class InputCombinationTopology(Topology):
    """``softmax(beta_j / T)`` over combinations of node ``j``'s input edges; edge weight = summed
    probability of the combinations containing the edge (see module docstring).

    Parameters
    ----------
    graph
        The cell's edge list.
    sizes
        Admissible combination sizes (``(2,)`` for pairs); sizes above a node's in-degree are
        dropped for that node, and a node left with no combination is a configuration error.
    temperature
        ``T`` in ``softmax(beta / T)``; schedules anneal it through the attribute.
    init_scale
        ``beta`` starts at ``init_scale * N(0, 1)``; the public DOTS code starts at exactly 0.
    """

    def __init__(self, graph: CellGraph, sizes: Sequence[int] = (2,), temperature: float = 1.0,
                 init_scale: float = 0.0) -> None:
        super().__init__(graph)
        self.sizes = tuple(sorted(set(int(k) for k in sizes)))
        if not self.sizes or min(self.sizes) < 1:
            raise ConfigError(f"combination sizes must be integers >= 1, got {list(sizes)}: a node keeps at "
                              f"least one input (the empty combination is not allowed)")
        self.temperature = float(temperature)
        self.enabled = True
        self._combinations: dict[int, list[tuple[int, ...]]] = {}
        self.beta = nn.ParameterList()
        for j in graph.node_ids:
            n = len(graph.in_edges(j))
            combos = input_combinations(n, self.sizes)
            if not combos:
                raise ConfigError(f"node {j} has {n} inputs, so no combination of size {list(self.sizes)} exists: "
                                  f"allow smaller combinations (e.g. --edges any, or a smaller min_edges)")
            self._combinations[j] = combos
            incidence = torch.zeros(len(combos), n)
            for m, combo in enumerate(combos):
                incidence[m, list(combo)] = 1.0
            # Fixed structure, rebuilt from the graph: not part of the state dict.
            self.register_buffer(f"incidence_{j}", incidence, persistent=False)
            self.beta.append(nn.Parameter(init_scale * torch.randn(len(combos))))

    # ------------------------------------------------------------------ structure
    def combinations(self, node: int) -> list[tuple[int, ...]]:
        """Node ``node``'s combinations, as tuples of source ids (0, 1: cell inputs; 2+: nodes)."""
        return list(self._combinations[node])

    def incidence(self, node: int) -> torch.Tensor:
        """``[num_combinations, in_degree]`` 0/1 matrix: row m marks the edges of combination m."""
        return getattr(self, f"incidence_{node}")

    # ------------------------------------------------------------------ weights
    def combination_probs(self) -> list[torch.Tensor]:
        """Per node (in ``graph.node_ids`` order): ``softmax(beta_j / T)`` over its combinations."""
        return [torch.softmax(beta / self.temperature, dim=-1) for beta in self.beta]

    def forward(self) -> torch.Tensor | None:
        if not self.enabled:
            return None
        parts = [probs @ self.incidence(j) for j, probs in zip(self.graph.node_ids, self.combination_probs(),
                                                                    strict=True)]
        return torch.cat(parts)  # in_edges(j) are contiguous and ordered by source: graph.edges order

    def best_combination(self, node: int) -> tuple[int, ...]:
        """The argmax combination of ``node`` (independent of the temperature)."""
        index = node - self.graph.node_ids.start
        return self._combinations[node][int(self.beta[index].argmax())]


def _options(temperature: float = 1.0, init_scale: float = 0.0) -> dict[str, Any]:
    return {"temperature": temperature, "init_scale": init_scale}


@register_topology("input_pairs")
def _input_pairs(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], *, temperature: float = 1.0,
                 init_scale: float = 0.0) -> InputCombinationTopology:
    """DOTS as published: combinations of exactly two input edges."""
    return InputCombinationTopology(graph, (2,), **_options(temperature, init_scale))


@register_topology("input_any")
def _input_any(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], *, min_edges: int = 1,
               max_edges: int | None = None, temperature: float = 1.0, init_scale: float = 0.0,
               ) -> InputCombinationTopology:
    """The paper's c_m sets: any non-empty combination of input edges (sizes min_edges..max_edges)."""
    largest = max(len(graph.in_edges(j)) for j in graph.node_ids)
    top = largest if max_edges is None else int(max_edges)
    if min_edges < 1 or top < min_edges:
        raise ConfigError(f"input_any needs 1 <= min_edges <= max_edges, got min_edges={min_edges}, "
                          f"max_edges={max_edges}")
    return InputCombinationTopology(graph, range(int(min_edges), top + 1), **_options(temperature, init_scale))
