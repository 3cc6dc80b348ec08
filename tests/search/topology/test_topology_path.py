"""The fixed search path: parsing, the constant edge mask, that off-path ops never run, derivation."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import CellGenotype
from nni_decouple.search.cell import DecoupledCell
from nni_decouple.search.derive import DERIVES
from nni_decouple.search.edges import MixedEdge
from nni_decouple.search.graph import CellGraph
from nni_decouple.search.topology import TOPOLOGIES, Topology
from nni_decouple.search.topology.path import FixedPathTopology, parse_path
from nni_decouple.search.weights import SoftmaxWeights
from nni_decouple.spaces.cell import CellPostprocessor, CellSpec

OPS = ("max_pool_3x3", "skip_connect", "sep_conv_3x3")


def test_named_paths() -> None:
    assert parse_path("full", 4) is None and parse_path(None, 4) is None
    assert parse_path("inputs", 3) == [[0, 1], [0, 1], [0, 1]]
    assert parse_path("chain", 4) == [[0, 1], [1, 2], [2, 3], [3, 4]]


def test_explicit_path() -> None:
    assert parse_path("0,1; 2,0 ;1,3", 3) == [[0, 1], [0, 2], [1, 3]]
    assert parse_path([[1], [0, 2]], 2) == [[1], [0, 2]]


@pytest.mark.parametrize("spec, match", [("0,1;0,1", "3"), ("0,1;0,3;0,1", "node 3"), ("0,x;1;2", "input ids"),
                                         ("0,1;;0,1", "node 3")])
def test_bad_paths(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_path(spec, 3)


def test_mask_is_one_on_the_path_only() -> None:
    graph = CellGraph(3)
    topology = FixedPathTopology(graph, [[0, 1], [1, 2], [0, 3]])
    mask = topology()
    on = {graph.edges[e] for e in range(graph.num_edges) if mask[e] == 1}
    assert on == {(0, 2), (1, 2), (1, 3), (2, 3), (0, 4), (3, 4)}
    assert float(mask.sum()) == 6 and list(topology.arch_parameters()) == []


def test_factory_per_cell_type() -> None:
    graph = CellGraph(2)
    normal = CellSpec(OPS, 4, False, False, 2, 0)
    reduce = CellSpec(OPS, 4, True, False, 2, 1)
    path = {"normal": "inputs", "reduce": "full"}
    assert isinstance(TOPOLOGIES["path"](graph, normal, "normal", {}, path=path), FixedPathTopology)
    full = TOPOLOGIES["path"](graph, reduce, "reduce", {}, path=path)
    assert type(full) is Topology and full() is None


class _Pre(torch.nn.Module):
    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(inputs)


def _cell(path: list[list[int]]) -> DecoupledCell:
    spec = CellSpec(OPS, 4, False, False, 2, 0)
    graph = CellGraph(2)
    return DecoupledCell(spec, "normal", _Pre(), CellPostprocessor(), SoftmaxWeights(graph, OPS),
                         FixedPathTopology(graph, path), DERIVES["path"], {}, MixedEdge)


def test_off_path_edges_do_not_run_and_derivation_follows_the_path() -> None:
    cell = _cell([[1], [0, 2]])
    with torch.no_grad():
        cell.op_weights.alpha.zero_()
        cell.op_weights.alpha[:, 2] = 1.0  # sep_conv_3x3 strongest everywhere
    x = torch.randn(2, 4, 6, 6)
    _, out = cell([x, x])
    out.sum().backward()
    graph = cell.graph
    for e, edge in enumerate(cell.edges):
        grads = [p.grad for p in edge.ops[2].parameters()]
        on_path = graph.edges[e] in {(1, 2), (0, 3), (2, 3)}
        assert all(g is not None for g in grads) == on_path
    genotype = cell.derive()
    assert genotype == CellGenotype.from_edges([[("sep_conv_3x3", 1)], [("sep_conv_3x3", 0), ("sep_conv_3x3", 2)]])
