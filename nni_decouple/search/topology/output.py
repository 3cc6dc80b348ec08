"""Stretchable Cells' topology: each node chooses which successors it feeds (output edges).

Paper: Huang et al., "Stretchable Cells Help DARTS Search Better" (Eq. 7-14). Node ``i`` has a
softmax over *codes*: sets of its successors it sends an edge to. Either every pair of successors
(``output_pairs``, Eq. 7-10, two output edges per node) or every subset, encoded as a binary
vector ``b_i`` (``output_any``, Eq. 11-13, any number of output edges, node removal allowed). The
probabilities of all codes that contain ``j`` merge into one weight ``s(i, j)`` that multiplies
edge ``(i, j)``, so the supernet computes each edge once, exactly as DARTS does.

Which nodes are "successors" (the paper's indices are loose here; see docs/stretchable.md):

* Node ids follow the package: ``0`` and ``1`` are the cell inputs, ``2 .. N+1`` the ``N``
  intermediate nodes. The paper's ``N`` counts the two inputs as nodes ``x_1, x_2`` and the
  intermediate nodes as ``x_3 .. x_N``; its experiments count nodes the DARTS way (DARTS has "7
  nodes": 2 inputs, 4 intermediate, 1 output), so paper ``N = 9`` is ``--nodes 6`` here.
* The successors of node ``i`` are the intermediate nodes after it: ``i+1 .. N+1`` for an
  intermediate node (``N+1-i`` of them: the paper's ``N - i``) and all ``N`` intermediate nodes
  for either cell input (a cell input cannot feed the other input).
* The cell inputs do choose output edges (otherwise nothing would feed the first node); the cell
  output is not a successor: every intermediate node is concatenated, as in the paper's supernet.
  With four intermediate nodes the pair variant then has 4 x 2 = 8 edges, "the same edge number 8
  as DARTS" that the paper reports; nodes with fewer than two successors have no pair, hence no
  output edge (their edges weigh 0).

The passive-aggressive regulariser ``r(beta)`` (Eq. 14) is zero while every intermediate node
receives an edge from the argmax code of some predecessor and grows when one receives none.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import torch
from torch import nn

from ...spaces.cell import CellSpec
from ..graph import CellGraph
from . import Topology, register_topology

Edges = Literal["two", "any"]


def successors(graph: CellGraph, node: int) -> list[int]:
    """The nodes ``node`` may send an output edge to (see the module docstring)."""
    return [t for s, t in graph.edges if s == node]


def node_codes(targets: list[int], edges: Edges, include_empty: bool = True) -> list[tuple[int, ...]]:
    """The codes of one node, each as the tuple of successors it feeds.

    ``two``: every pair (Eq. 7). ``any``: every subset (Eq. 11), ordered by the binary number
    ``b_i`` read with the first successor as the lowest bit, so code ``0`` is the empty set.
    """
    if edges == "two":
        return list(itertools.combinations(targets, 2))
    codes = [tuple(t for k, t in enumerate(targets) if (number >> k) & 1) for number in range(2 ** len(targets))]
    return codes if include_empty else codes[1:]


#: How merged weights are scaled (``scale``): ``even`` (default) divides by the share of a node's
#: codes that feed an edge, so that uniform code probabilities give every edge weight 1, which is the
#: stated purpose of Eq. 10 / Eq. 13, with or without the empty code; ``printed`` is Eq. 13 exactly
#: as printed, ``(2^n - 1) / 2^(n-1)``, which evens the weights out only without the empty code.
SCALE_RULES = ("even", "printed")


def merge_scale(num_successors: int, edges: Edges, include_empty: bool = True, rule: str = "even") -> float:
    """The factor of Eq. 10 (pairs) or Eq. 13 (any subset) for a node with ``n`` successors.

    ``even``: number of codes / number of codes that feed one given successor. Pairs:
    ``C(n, 2) / C(n-1, 1) = n / 2`` (Eq. 10). Any, without the empty code: ``(2^n - 1) / 2^(n-1)``
    (Eq. 13). Any, with the empty code (the paper's ``2^(N-i)`` codes): ``2^n / 2^(n-1) = 2``.
    ``printed``: Eq. 13 as printed also with the empty code; uniform probabilities then give
    ``1 - 2^-n`` (0.5 for a node with one successor, 0.99 for the inputs of a 7-node cell).
    """
    if rule not in SCALE_RULES:
        raise ValueError(f"unknown scale rule {rule!r}: choose one of {', '.join(SCALE_RULES)}")
    n = num_successors
    if edges == "two":
        return math.comb(n, 2) / math.comb(n - 1, 1) if n >= 2 else 0.0
    if n < 1:
        return 0.0
    if include_empty and rule == "even":
        return 2.0
    return (2 ** n - 1) / 2 ** (n - 1)


def num_topology_parameters(num_nodes: int, edges: Edges = "any", include_empty: bool = True) -> int:
    """The number of topology variables ``beta`` of one cell with ``num_nodes`` intermediate nodes.

    ``any`` with the empty code: ``2 * 2^N`` for the two inputs plus ``sum_{k<N} 2^k`` for the
    intermediate nodes, i.e. ``3 * 2^N - 1`` (191 for the paper's N = 9, i.e. 6 intermediate nodes).
    ``two``: ``2 * C(N, 2) + sum_{k<N} C(k, 2)``.
    """
    n = num_nodes
    counts = [n, n, *range(n - 1, -1, -1)]  # successors of inputs 0, 1, then of nodes 2 .. N+1
    if edges == "two":
        return sum(math.comb(c, 2) for c in counts)
    return sum(2 ** c - (0 if include_empty else 1) for c in counts)


class OutputTopology(Topology):
    """Topology variables over output-edge codes (Stretchable Cells, Eq. 7-14).

    ``beta`` is one flat parameter holding every code of every node (node by node, codes in the
    order of :func:`node_codes`). ``forward()`` returns ``s(i, j)`` for every edge of the cell graph.

    Args:
        graph: the cell's edge list.
        edges: ``two`` (fixed two output edges, Eq. 7-10) or ``any`` (binary codes, Eq. 11-13).
        include_empty: ``any`` only: whether the empty code (the node feeds no later node) is a
            choice. The paper's text includes it ("including none for removing the node", 2^(N-i)
            codes); its Eq. 11 sum starts at one edge.
        scale: the factor of Eq. 10 / Eq. 13: ``True`` or ``'even'`` (uniform probabilities give
            every edge weight 1, also with the empty code), ``'printed'`` (Eq. 13 as printed), or
            ``False`` (the plain merged probability of Eq. 9). See :func:`merge_scale`.
        reg_lambda: weight of ``r(beta)`` in the architecture loss (Eq. 15; the paper uses 10).
        init_scale: ``beta ~ init_scale * N(0, 1)``, as DARTS initialises alpha.
    """

    def __init__(self, graph: CellGraph, edges: Edges = "any", include_empty: bool = True, scale: bool | str = True,
                 reg_lambda: float = 10.0, init_scale: float = 1e-3) -> None:
        super().__init__(graph)
        if edges not in ("two", "any"):
            raise ValueError(f"edges must be 'two' or 'any', got {edges!r}")
        rule = "even" if scale is True else scale
        if rule is not False and rule not in SCALE_RULES:
            raise ValueError(f"scale must be True, False or one of {', '.join(SCALE_RULES)}, got {scale!r}")
        self.edges, self.include_empty, self.reg_lambda = edges, include_empty, float(reg_lambda)
        nodes = [0, 1, *graph.node_ids]
        #: For every node: its successors and its codes; nodes without a code have no parameters.
        self.node_successors = {i: successors(graph, i) for i in nodes}
        self.codes = {i: node_codes(self.node_successors[i], edges, include_empty) for i in nodes}
        self.sources = [i for i in nodes if self.codes[i]]
        row_of = {i: r for r, i in enumerate(self.sources)}
        width = max((len(self.codes[i]) for i in self.sources), default=1)
        num_codes = sum(len(self.codes[i]) for i in self.sources)

        flat_index, bits = [], torch.zeros(graph.num_edges, width)
        for r, i in enumerate(self.sources):
            flat_index.extend(r * width + k for k in range(len(self.codes[i])))
        source_row = torch.zeros(graph.num_edges, dtype=torch.long)
        has_codes = torch.zeros(graph.num_edges, dtype=torch.bool)
        scales = torch.zeros(graph.num_edges)
        for e, (i, j) in enumerate(graph.edges):
            if i not in row_of:
                continue
            source_row[e], has_codes[e] = row_of[i], True
            for k, code in enumerate(self.codes[i]):
                bits[e, k] = float(j in code)
            scales[e] = merge_scale(len(self.node_successors[i]), edges, include_empty, rule) if rule else 1.0
        self.beta = nn.Parameter(init_scale * torch.randn(num_codes))
        self.register_buffer("flat_index", torch.tensor(flat_index, dtype=torch.long), persistent=False)
        # bits[e, k] = 1 if code k of the source of edge e feeds its target
        self.register_buffer("bits", bits, persistent=False)
        self.register_buffer("source_row", source_row, persistent=False)
        self.register_buffer("has_codes", has_codes, persistent=False)
        self.register_buffer("scales", scales, persistent=False)
        self._shape = (len(self.sources), width)

    # ---------------------------------------------------------------- probabilities
    def padded_beta(self) -> torch.Tensor:
        """``[source nodes, max codes]`` with ``-inf`` where a node has fewer codes."""
        rows, width = self._shape
        padded = self.beta.new_full((rows * width,), float("-inf"))
        return padded.index_copy(0, self.flat_index, self.beta).view(rows, width)

    def code_probabilities(self) -> torch.Tensor:
        """``p(b_i)`` (Eq. 8 / Eq. 12) as ``[source nodes, max codes]``, zero in the padding."""
        return torch.softmax(self.padded_beta(), dim=-1)

    def node_probabilities(self) -> dict[int, dict[tuple[int, ...], float]]:
        """``{node: {code (successors fed): probability}}``, for reports."""
        with torch.no_grad():
            p = self.code_probabilities().cpu()
        return {i: {code: float(p[r, k]) for k, code in enumerate(self.codes[i])} for r, i in enumerate(self.sources)}

    def forward(self) -> torch.Tensor:
        """``s(i, j)`` per edge: the (scaled) probability mass of the codes of ``i`` that feed ``j``."""
        p = self.code_probabilities()
        merged = (p[self.source_row] * self.bits).sum(dim=-1)
        return merged * self.scales

    # ---------------------------------------------------------------- regulariser (Eq. 14)
    def keep_ratios(self) -> torch.Tensor:
        """Per edge ``(i, j)``: ``max_{b_i: b_i^j = 1} p(b_i) / max_{b_i} p(b_i)``.

        Computed as ``exp(max beta over codes feeding j - max beta)`` (the softmax normaliser cancels);
        it is 1 exactly when the argmax code of ``i`` feeds ``j``, and 0 for a source without codes.
        """
        padded = self.padded_beta()[self.source_row]  # [edges, width]
        best = padded.max(dim=-1).values
        feeding = padded.masked_fill(self.bits == 0, float("-inf")).max(dim=-1).values
        ratio = torch.exp(feeding - best)
        return torch.where(self.has_codes & torch.isfinite(feeding), ratio, torch.zeros_like(ratio))

    def invalidity(self) -> torch.Tensor:
        """``r(beta)`` of Eq. 14: ``sum_j prod_{i<j} (1 - keep ratio of (i, j))`` over the
        intermediate nodes ``j``; each term is 0 when some predecessor's argmax code feeds ``j`` and
        up to 1 when none does."""
        factors = 1.0 - self.keep_ratios()
        terms = [factors[self.graph.in_edges(j).start:self.graph.in_edges(j).stop].prod() for j in self.graph.node_ids]
        return torch.stack(terms).sum()

    def regularizer(self) -> torch.Tensor | None:
        """``lambda * r(beta)`` for the architecture loss (Eq. 15); ``None`` when lambda is 0."""
        return self.reg_lambda * self.invalidity() if self.reg_lambda else None

    # ---------------------------------------------------------------- codes
    def beta_index(self, node: int, code: tuple[int, ...]) -> int:
        """Position in ``beta`` of ``node``'s code feeding exactly the successors in ``code``."""
        if node not in self.sources:
            raise KeyError(f"node {node} has no topology variables")
        wanted = tuple(sorted(code))
        offset = sum(len(self.codes[i]) for i in self.sources[: self.sources.index(node)])
        try:
            return offset + self.codes[node].index(wanted)
        except ValueError:
            raise KeyError(f"node {node} has no code {wanted}; its codes feed subsets of "
                           f"{self.node_successors[node]}") from None

    @torch.no_grad()
    def set_codes(self, codes: dict[int, tuple[int, ...]], margin: float = 5.0) -> None:
        """Fix a topology: every listed node's ``code`` gets ``beta = margin``, all other codes 0
        (e.g. to evaluate a given topology, as the paper's random-operation baseline does)."""
        self.beta.zero_()
        for node, code in codes.items():
            self.beta[self.beta_index(node, code)] = margin

    # ---------------------------------------------------------------- derivation
    def chosen_codes(self) -> dict[int, tuple[int, ...]]:
        """The argmax code of every node with codes (the successors it keeps feeding)."""
        with torch.no_grad():
            best = self.padded_beta().argmax(dim=-1).tolist()
        return {i: self.codes[i][best[r]] for r, i in enumerate(self.sources)}

    def kept_edges(self) -> list[int]:
        """Indices of the edges in some node's argmax code (before dropping nodes without inputs)."""
        chosen = self.chosen_codes()
        return [e for e, (i, j) in enumerate(self.graph.edges) if j in chosen.get(i, ())]

    def extra_repr(self) -> str:
        return (f"edges={self.edges!r}, nodes={self.graph.num_nodes}, codes={self.beta.numel()}, "
                f"reg_lambda={self.reg_lambda}")


@register_topology("output_any")
def _output_any(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], **options: Any) -> Topology:
    return OutputTopology(graph, edges="any", **options)


@register_topology("output_pairs")
def _output_pairs(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], **options: Any) -> Topology:
    options.pop("include_empty", None)  # pairs never include the empty code
    return OutputTopology(graph, edges="two", **options)
