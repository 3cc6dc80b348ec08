"""The decoupled supernet cell: one NNI supermodule for every method of the package.

It replaces an NNI :class:`~nni.nas.nn.pytorch.Cell` of :class:`~nni_decouple.spaces.CellSpace`
and computes, for every intermediate node ``j``,

    x_j = sum_{i<j} t[i,j] * sum_k w[(i,j), k] * op_k(x_i)

where ``w`` comes from the *op weights* axis (:mod:`.weights`) and ``t`` from the *topology* axis
(:mod:`.topology`; ``t = 1`` when the method has none). Derivation is the *derive* axis
(:mod:`.derive`). Cells with the same label share their op-weight and topology modules.

With ``fast=True`` (the default of every strategy, ``--no-fast`` to compare) the cell computes the
same sum on its *fast path* (docs/performance.md): weights are split once per cell instead of
indexed per op, ops whose fixed weight is zero and ``none`` are not run (both add an exact zero;
a whole cell switched off by D-DARTS' ablation costs nothing), parameter-free ops (pools) run once
per input node and are shared by every edge reading it, and terms are added with a fused
``addcmul``; the edges' dilated depthwise convolutions take their faster CPU backward
(:mod:`nni_decouple.models.depthwise`). The memory format (channels-last) is set on the whole
supernet by the runner's :class:`~nni_decouple.runner.callbacks.MemoryFormat` callback, not here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ..models.depthwise import DepthwiseConv2d
from ..models.genotype import CellGenotype
from ..spaces.cell import CellSpec
from .derive import Deriver
from .edges import EdgeFactory, MixedEdge
from .graph import CellGraph
from .topology import Topology
from .weights import OpWeights

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.nn.pytorch import Cell
    from nni.nas.nn.pytorch.cell import preprocess_cell_inputs
    from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule


class DecoupledCell(BaseSuperNetModule):
    """Supernet cell with pluggable op weights, topology and derivation (see module docstring)."""

    def __init__(self, spec: CellSpec, label: str, preprocessor: nn.Module, postprocessor: nn.Module,
                 op_weights: OpWeights, topology: Topology, derive: Deriver, derive_options: dict[str, Any],
                 edge_factory: EdgeFactory = MixedEdge, fast: bool = False) -> None:
        super().__init__()
        #: Whether :meth:`forward` takes the fast path (module docstring); same function, same gradients.
        self.fast = bool(fast)
        self.spec, self._label = spec, label
        self.graph = CellGraph(spec.num_nodes)
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.edges = nn.ModuleList(edge_factory(spec, source) for source, _ in self.graph.edges)
        for module in self.edges.modules():  # dilated depthwise convolutions: the faster CPU backward
            if isinstance(module, DepthwiseConv2d):
                module.fast_backward = self.fast
        self.op_weights = op_weights
        self.topology = topology
        self._derive, self._derive_options = derive, derive_options
        #: Set by schedules to switch a cell's contribution off (e.g. D-DARTS' ablation).
        self.op_weight_override: torch.Tensor | None = None

    @property
    def label(self) -> str:
        return self._label

    # -------------------------------------------------------------- weights
    def edge_op_weights(self) -> torch.Tensor:
        """``[num_edges, num_ops]`` op weights of this cell."""
        return self.op_weights() if self.op_weight_override is None else self.op_weight_override

    def edge_weights(self) -> torch.Tensor | None:
        """``[num_edges]`` topology weights, or ``None`` when the method has none."""
        return self.topology()

    def arch_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.op_weights.arch_parameters()
        yield from self.topology.arch_parameters()

    # -------------------------------------------------------------- forward
    def forward(self, *inputs: list[torch.Tensor] | torch.Tensor) -> Any:
        processed = preprocess_cell_inputs(2, *inputs)
        states: list[torch.Tensor] = self.preprocessor(processed)
        if self.op_weight_override is None:
            weights, factors = self.op_weights.split()  # factors weigh whole edges (e.g. DNAS' beta)
        else:
            weights, factors = self.op_weight_override, None
        edge_weights = self.edge_weights()
        if self.fast:
            self._fast_nodes(states, weights, factors, edge_weights)
            return self.postprocessor(torch.cat(states[2:], dim=1), processed)
        for j in self.graph.node_ids:
            node = None
            for e in self.graph.in_edges(j):
                if edge_weights is not None and not edge_weights.requires_grad and float(edge_weights[e]) == 0.0:
                    continue  # a fixed zero edge contributes nothing: skip its ops
                y = self.edges[e](states[self.graph.edges[e][0]], weights[e])
                if factors is not None:
                    y = factors[e] * y
                if edge_weights is not None:
                    y = edge_weights[e] * y
                node = y if node is None else node + y
            states.append(node if node is not None else torch.zeros_like(states[1]))
        out = torch.cat(states[2:], dim=1)
        return self.postprocessor(out, processed)

    def _fast_nodes(self, states: list[torch.Tensor], weights: torch.Tensor, factors: torch.Tensor | None,
                    edge_weights: torch.Tensor | None) -> None:
        """Append every intermediate node to ``states`` on the fast path (module docstring).

        ``weights``: ``[num_edges, num_ops]``; ``factors`` and ``edge_weights``: ``[num_edges]`` or
        ``None``; both scale whole edges, so they are folded into one scale per edge."""
        rows = weights.unbind(0)
        # Which weights are fixed zeros: one host read per cell (none while they carry gradient).
        live = None if weights.requires_grad else (weights != 0).tolist()
        if factors is not None and edge_weights is not None:
            scale = factors * edge_weights
        else:
            scale = factors if factors is not None else edge_weights
        scales = scale.unbind(0) if scale is not None else None
        edge_live = (None if edge_weights is None or edge_weights.requires_grad
                     else (edge_weights != 0).tolist())
        shared: dict[Any, torch.Tensor] = {}
        for j in self.graph.node_ids:
            node = None
            for e in self.graph.in_edges(j):
                if edge_live is not None and not edge_live[e]:
                    continue  # a fixed zero edge contributes nothing: skip its ops
                source = self.graph.edges[e][0]
                edge = self.edges[e]
                fast_forward = getattr(edge, "fast_forward", None)
                if fast_forward is None:  # an edge of another kind: its own forward
                    y = edge(states[source], weights[e])
                else:
                    y = fast_forward(states[source], rows[e], None if live is None else live[e], shared, source)
                if y is None:
                    continue  # no op of the edge contributes: an exact zero
                if scales is None:
                    node = y if node is None else node + y
                else:
                    node = scales[e] * y if node is None else torch.addcmul(node, scales[e], y)
            if node is None:  # every input is off: zeros of the node's shape (the ``none`` op's)
                source = self.graph.edges[self.graph.in_edges(j)[0]][0]
                stride = self.spec.stride(source)
                node = states[source][:, :, ::stride, ::stride].mul(0.0)
            states.append(node)

    # -------------------------------------------------------------- NNI supermodule API
    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}

    def derive(self) -> CellGenotype:
        return self._derive(self, **self._derive_options)

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        if any(k.startswith(f"{self.label}/op_") for k in memo):
            return {}  # a cell with the same label has been exported already
        return self.derive().to_arch(self.label)

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        if any(k.startswith(f"{self.label}/") for k in memo):
            return {}
        with torch.no_grad():
            weights = self.edge_op_weights().cpu()
            edge_weights = self.edge_weights()
        probs: dict[str, Any] = {}
        for e, (i, j) in enumerate(self.graph.edges):
            probs[f"{self.label}/{j}_{i}"] = {name: float(weights[e, k]) for k, name in enumerate(self.spec.op_names)}
        if edge_weights is not None:
            for j in self.graph.node_ids:
                probs[f"{self.label}/topology_{j}"] = {
                    str(self.graph.edges[e][0]): float(edge_weights[e]) for e in self.graph.in_edges(j)}
        return probs

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict[str, Any], mutate_kwargs: dict[str, Any]) -> Any:
        return None  # strategies build cells through :func:`cell_hook`


def cell_hook(make_weights: Callable[[CellGraph, CellSpec, str, dict[str, Any]], OpWeights],
              make_topology: Callable[[CellGraph, CellSpec, str, dict[str, Any]], Topology],
              derive: Deriver, derive_options: dict[str, Any] | None = None,
              edge_factory: EdgeFactory = MixedEdge, fast: bool = False) -> Callable[..., DecoupledCell | None]:
    """An NNI mutation hook that turns each space cell into a :class:`DecoupledCell`
    (``fast``: its fast path, see the module docstring).

    The first cell of a label creates the op-weight and topology modules; later cells with the
    same label reuse them (memo key ``{label}/decoupled``), which is how labels decide sharing.
    """

    def hook(module: nn.Module, name: str, memo: dict[str, Any], mutate_kwargs: dict[str, Any]) -> DecoupledCell | None:
        if type(module) is not Cell:
            return None
        spec: CellSpec | None = getattr(module, "spec", None)
        if spec is None:
            raise TypeError(f"cell {name!r} has no CellSpec: build the space with nni_decouple.spaces.CellSpace")
        label = module.label
        key = f"{label}/decoupled"
        graph = CellGraph(spec.num_nodes)
        if key not in memo:
            memo[key] = (make_weights(graph, spec, label, memo), make_topology(graph, spec, label, memo))
        op_weights, topology = memo[key]
        return DecoupledCell(spec, label, module.preprocessor, module.postprocessor, op_weights, topology,
                             derive, dict(derive_options or {}), edge_factory, fast)

    return hook
