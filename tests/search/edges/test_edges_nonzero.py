"""The none-skipping edge computes the same function and gradients as the plain mixed edge."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.models.ops import DARTS_OPS
from nni_decouple.search.edges import MixedEdge
from nni_decouple.search.edges.nonzero import NonZeroMixedEdge
from nni_decouple.spaces.cell import CellSpec


@pytest.mark.parametrize("source", [0, 2])  # stride 2 and stride 1 in a reduction cell
def test_same_output_and_gradients_without_computing_none(source: int) -> None:
    spec = CellSpec(DARTS_OPS, 4, True, False, 2, 0)
    plain, skipping = MixedEdge(spec, source), NonZeroMixedEdge(spec, source)
    skipping.load_state_dict(plain.state_dict())
    x = torch.randn(2, 4, 8, 8)
    outputs, grads = [], []
    for edge in (plain, skipping):
        w = torch.softmax(torch.randn(8, generator=torch.Generator().manual_seed(1)), -1).requires_grad_()
        xi = x.clone().requires_grad_()
        y = edge(xi, w)
        y.pow(2).sum().backward()
        outputs.append(y.detach())
        grads.append((w.grad, xi.grad))
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    assert float(grads[1][0][0]) == 0.0  # none's weight gets no gradient either way


def test_only_none_left_gives_zeros_of_the_output_shape() -> None:
    spec = CellSpec(DARTS_OPS, 4, True, False, 2, 0)
    edge = NonZeroMixedEdge(spec, 0)
    edge.prune([0])
    y = edge(torch.randn(2, 4, 8, 8), torch.ones(8))
    assert y.shape == (2, 4, 4, 4) and not y.any()
