"""Axis "op weights": how architecture parameters become per-edge op weights.

An :class:`OpWeights` module owns its architecture parameters and returns, on call, a tensor
``[num_edges, num_ops]`` of op weights for one cell. Modules are shared between cells with the
same label (DARTS sharing); per-layer labels give per-layer weights. New parametrisations
register with :func:`register_weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ...spaces.cell import CellSpec
from ..graph import CellGraph


class OpWeights(nn.Module):
    """Base class. Subclasses create nn.Parameters (the architecture parameters) in ``__init__``."""

    #: Parameter name prefixes that are architecture parameters (everything, by default).
    def __init__(self, graph: CellGraph, op_names: tuple[str, ...]) -> None:
        super().__init__()
        self.graph, self.op_names = graph, op_names

    def forward(self) -> torch.Tensor:  # [num_edges, num_ops]
        raise NotImplementedError

    def arch_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.parameters()

    def logits(self) -> torch.Tensor:
        """The raw per-edge op scores used to rank ops at derivation (defaults to the weights)."""
        return self()

    def split(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the cell computes with: ``(w [num_edges, num_ops], f [num_edges] or None)``.

        Each edge computes ``sum_k w[e, k] * op_k(x)`` and, when ``f`` is given, the *whole* edge
        output (a partial-channel edge's bypassed channels included) is multiplied by ``f[e]``;
        ``w[e, k] * f[e]`` equals ``self()[e, k]``. Default: all in ``w`` (``f = None``).
        """
        return self(), None


class SoftmaxWeights(OpWeights):
    """DARTS: ``softmax(alpha[e])`` over the ops of each edge; alpha ~ 1e-3 * N(0, 1)."""

    def __init__(self, graph: CellGraph, op_names: tuple[str, ...], init_scale: float = 1e-3) -> None:
        super().__init__(graph, op_names)
        self.alpha = nn.Parameter(init_scale * torch.randn(graph.num_edges, len(op_names)))

    def forward(self) -> torch.Tensor:
        return torch.softmax(self.alpha, dim=-1)


class SigmoidWeights(OpWeights):
    """FairDARTS / D-DARTS: independent ``sigmoid(alpha[e, k])`` per op (no competition)."""

    def __init__(self, graph: CellGraph, op_names: tuple[str, ...], init_scale: float = 1e-3) -> None:
        super().__init__(graph, op_names)
        self.alpha = nn.Parameter(init_scale * torch.randn(graph.num_edges, len(op_names)))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha)


#: ``factory(graph, spec, label, memo, **options) -> OpWeights``; ``memo`` is the mutation memo
#: shared across all cells of one supernet (for parameters shared beyond one label, e.g. DNAS' alpha).
WeightsFactory = Callable[..., OpWeights]
WEIGHTS: dict[str, WeightsFactory] = {}


def register_weights(name: str) -> Callable[[WeightsFactory], WeightsFactory]:
    def _register(factory: WeightsFactory) -> WeightsFactory:
        WEIGHTS[name] = factory
        return factory

    return _register


@register_weights("softmax")
def _softmax(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], **options: Any) -> OpWeights:
    return SoftmaxWeights(graph, spec.op_names, **options)


@register_weights("sigmoid")
def _sigmoid(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], **options: Any) -> OpWeights:
    return SigmoidWeights(graph, spec.op_names, **options)
