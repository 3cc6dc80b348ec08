"""DNAS' factorised op weights: parameter count, Eq. 4, sharing of alpha, zero-one loss."""

from __future__ import annotations

import math

import pytest
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.search.graph import CellGraph
from nni_decouple.search.weights import WEIGHTS
from nni_decouple.search.weights.factorised import FactorisedWeights, SharedAlpha
from nni_decouple.spaces import CellSpace
from nni_decouple.spaces.cell import CellSpec
from nni_decouple.strategies.dnas import DNAS

OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3")


def supernet_cells(strategy: DNAS, layers: int, nodes: int) -> list[DecoupledCell]:
    space = CellSpace(ops=list(OPS), channels=8, layers=layers, nodes=nodes, sharing="layer", in_chans=1)
    net = strategy.mutate_model(space)
    return [m for m in net.modules() if isinstance(m, DecoupledCell)]


def arch_numel(cells: list[DecoupledCell]) -> int:
    unique = {id(p): p for cell in cells for p in cell.arch_parameters()}
    return sum(p.numel() for p in unique.values())


@pytest.mark.parametrize("nodes", [2, 4])
def test_parameter_count_is_factorised(nodes: int) -> None:
    layers = 4
    cells = supernet_cells(DNAS(partial_k=1), layers, nodes)
    c, op = CellGraph(nodes).num_edges, len(OPS)
    assert len(cells) == layers and len({cell.label for cell in cells}) == layers
    assert arch_numel(cells) == layers * c + layers * op + c * op
    # alpha is one tensor for every layer; beta and gamma are per layer
    assert len({id(cell.op_weights.alpha) for cell in cells}) == 1
    assert len({id(cell.op_weights.gamma) for cell in cells}) == layers


def test_baseline_parameter_count_is_unfactorised() -> None:
    layers, nodes = 4, 4
    cells = supernet_cells(DNAS(weights="unfactorised", partial_k=1), layers, nodes)
    assert arch_numel(cells) == layers * CellGraph(nodes).num_edges * len(OPS)


def test_alpha_sharing_by_type_gives_two_alphas() -> None:
    cells = supernet_cells(DNAS(partial_k=1, alpha_sharing="type"), 4, 2)
    assert len({id(cell.op_weights.alpha) for cell in cells}) == 2
    assert arch_numel(cells) == 4 * 5 + 4 * len(OPS) + 2 * 5 * len(OPS)


def make_weights(memo: dict, layer: int = 0, nodes: int = 4, **options) -> FactorisedWeights:
    spec = CellSpec(OPS, 8, False, False, nodes, layer)
    return WEIGHTS["factorised"](CellGraph(nodes), spec, f"normal_{layer}", memo, **options)


def test_psi_equals_equation_4_for_random_parameters() -> None:
    memo: dict = {}
    weights = make_weights(memo)
    with torch.no_grad():
        for p in weights.parameters():
            p.copy_(3 * torch.randn_like(p))
    psi = weights()
    alpha, beta, gamma = (t.detach().tolist() for t in (weights.alpha, weights.beta, weights.gamma))

    def sigmoid(v: float) -> float:
        return 1 / (1 + math.exp(-v))

    z = sum(math.exp(b) for b in beta)
    for i in range(len(beta)):
        for j in range(len(OPS)):
            expected = sigmoid(alpha[i][j]) * (math.exp(beta[i]) / z) * sigmoid(gamma[j])
            assert psi[i, j].item() == pytest.approx(expected, rel=1e-5)


def test_alternative_activations_and_node_scope() -> None:
    weights = make_weights({}, sigma_alpha="softmax", sigma_gamma="softmax", beta_scope="node", w01=0.0)
    with torch.no_grad():
        for p in weights.parameters():
            p.copy_(torch.randn_like(p))
    graph = weights.graph
    b = weights.beta_weights()
    for j in graph.node_ids:  # per-node softmax: each node's input connections sum to 1
        assert b[list(graph.in_edges(j))].sum().item() == pytest.approx(1.0)
    expected = (torch.softmax(weights.alpha, -1) * b[:, None] * torch.softmax(weights.gamma, -1)[None, :])
    assert torch.allclose(weights(), expected)


def test_alpha_is_shared_and_gets_gradient_from_every_layer() -> None:
    memo: dict = {}
    first, second = make_weights(memo, 0), make_weights(memo, 1)
    assert first.alpha is second.alpha
    first().sum().backward()
    g1 = first.alpha.grad.clone()
    second().sum().backward()
    assert not torch.allclose(first.alpha.grad, g1)  # the second layer added to the same tensor
    assert second.beta.grad is not None and first.gamma.grad is not None


def test_zero_one_loss_is_one_fairdarts_mean_over_alpha_and_all_gammas() -> None:
    memo: dict = {}
    layers = [make_weights(memo, k, w01=10.0) for k in range(3)]
    with torch.no_grad():
        for w in layers:
            for p in w.parameters():
                p.copy_(torch.randn_like(p))
    total = torch.stack([w.regularizer() for w in layers]).sum()
    gates = torch.cat([torch.sigmoid(layers[0].alpha).flatten()] + [torch.sigmoid(w.gamma) for w in layers])
    expected = -10.0 * ((gates - 0.5) ** 2).mean()  # FairDARTS: -w01 * mse(sigmoid(.), 0.5)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert make_weights({}, w01=0.0).regularizer() is None


def test_zero_one_loss_refuses_non_sigmoid_targets() -> None:
    with pytest.raises(ConfigError, match="zero-one"):
        make_weights({}, sigma_alpha="softmax")
    with pytest.raises(ConfigError, match="sigma_beta"):
        make_weights({}, sigma_beta="tanh")
    with pytest.raises(ConfigError, match="zero-one"):
        DNAS(sigma_gamma="softmax")


def test_shared_alpha_needs_cells_of_one_shape() -> None:
    with pytest.raises(ConfigError, match="same nodes"):
        FactorisedWeights(CellGraph(2), OPS, SharedAlpha(14, len(OPS)))


def test_connection_factor_switches_off_the_whole_partial_channel_edge() -> None:
    """Issue 20, finding 3: softmax(beta[k])[i] multiplies the whole edge, bypassed channels included
    (PC-DARTS' edge weight). With connection 0 -> 2 off, input s0 must not change node 2's output
    (before: it changed 77% of it through the (K-1)/K bypassed channels)."""
    torch.manual_seed(0)
    cells = supernet_cells(DNAS(partial_k=4), layers=3, nodes=1)
    cell = cells[0]  # a normal cell: edges 0 -> 2 and 1 -> 2
    with torch.no_grad():
        cell.op_weights.beta.copy_(torch.tensor([-20.0, 20.0]))
    cell.eval()
    s0, s1 = torch.randn(2, 24, 6, 6), torch.randn(2, 24, 6, 6)  # the stem gives 3C channels
    def output(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = cell([a, b])
        return out[-1] if isinstance(out, (list, tuple)) else out  # NNI's cell returns [s1, output]

    with torch.no_grad():
        base = output(s0, s1)
        moved = output(s0 + torch.randn_like(s0), s1)
        other = output(s0, s1 + torch.randn_like(s1))
    assert float((moved - base).norm() / base.norm()) < 1e-6
    assert float((other - base).norm() / base.norm()) > 0.1  # the connection that is on still matters


def test_split_weights_multiply_back_to_psi() -> None:
    cells = supernet_cells(DNAS(partial_k=1), layers=3, nodes=2)
    weights = cells[0].op_weights
    with torch.no_grad():
        for p in weights.arch_parameters():
            p.normal_()
        ops, factor = weights.split()
        torch.testing.assert_close(ops * factor[:, None], weights())
