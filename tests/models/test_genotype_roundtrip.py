"""Every genotype kind goes through every text and JSON form and comes back identical (a property test),
and genotype text is read as Python: several lines, comments, several definitions selected by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nni_decouple.cli import main
from nni_decouple.errors import GenotypeError
from nni_decouple.models.genotype import (
    NUM_INPUTS,
    CellGenotype,
    Genotype,
    load_genotype,
    parse_genotype_file_text,
    parse_genotype_text,
)
from nni_decouple.models.ops import S_O_OPS

OPS = ("none", *S_O_OPS)


@st.composite
def cells(draw: Any, in_degree: int | None = None) -> CellGenotype:
    """A valid cell: nodes with ``in_degree`` inputs each (any number, 0..3, when None); a node without
    inputs is read by no later node and not concatenated."""
    num_nodes = draw(st.integers(1, 5))
    nodes: list[list[tuple[str, int]]] = []
    live = [0, 1]
    for i in range(num_nodes):
        count = in_degree if in_degree is not None else draw(st.integers(0 if i else 1, 3))
        node = [(draw(st.sampled_from(OPS)), draw(st.sampled_from(live))) for _ in range(count)]
        nodes.append(node)
        if node:
            live.append(i + NUM_INPUTS)
    with_inputs = [i + NUM_INPUTS for i, node in enumerate(nodes) if node]
    concat = draw(st.lists(st.sampled_from(with_inputs), min_size=1, max_size=len(with_inputs), unique=True))
    return CellGenotype.from_edges(nodes, concat).validate()


@st.composite
def genotypes(draw: Any) -> Genotype:
    kind = draw(st.sampled_from(["darts", "shared", "per_layer"]))
    if kind != "per_layer":
        cell = cells(2) if kind == "darts" else cells()
        return Genotype(normal=draw(cell), reduce=draw(cell)).validate()
    layers = tuple(draw(st.lists(cells(), min_size=1, max_size=4)))
    reductions = draw(st.lists(st.integers(0, len(layers) - 1), unique=True, max_size=2))
    return Genotype(layers=layers, reductions=tuple(sorted(reductions))).validate()


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(genotypes())
def test_every_genotype_round_trips_through_every_form(genotype: Genotype) -> None:
    text = genotype.to_text()
    assert parse_genotype_text(text) == genotype, text
    assert parse_genotype_text(f"# a comment\nname = {text}\n", name="name") == genotype
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert Genotype.from_json(genotype.to_json(indent=None)) == genotype
    assert Genotype.from_dict(json.loads(json.dumps(genotype.to_dict()))).validate() == genotype
    assert Genotype.from_arch(json.loads(json.dumps(genotype.to_arch()))) == genotype


def test_variable_in_degree_cells_keep_every_edge_target() -> None:
    """A Stretchable-Cells cell (nodes with one, no and three inputs) is not written as DARTS pairs: those
    would read back as another cell, two edges per node (the old writer's fault)."""
    cell = CellGenotype.from_edges([[("sep_conv_3x3", 0)], [], [("skip_connect", 1), ("max_pool_3x3", 0),
                                                                 ("sep_conv_3x3", 2)]], [2, 4])
    genotype = Genotype(normal=cell, reduce=cell).validate()
    text = genotype.to_text()
    assert "[[('sep_conv_3x3', 0)], [], [('skip_connect', 1)" in text
    assert parse_genotype_text(text) == genotype


MULTI_LINE = """
my_cell = Genotype(
    normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('none', 1),
            ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1),
            ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)],
    reduce_concat=[2, 3, 4, 5],
)
"""


def test_the_issues_multi_line_genotype_converts_to_json(tmp_path: Path, capsys) -> None:
    path = tmp_path / "my_cell.py"
    path.write_text(MULTI_LINE)
    assert main(["genotype", str(path), "--to", "json"]) == 0
    genotype = Genotype.from_json(capsys.readouterr().out)
    assert genotype == parse_genotype_text(" ".join(MULTI_LINE.split()))  # the same text on one line
    assert genotype.normal.nodes[1] == parse_genotype_text(MULTI_LINE).normal.nodes[1]


DARTS_STYLE_FILE = """\
from collections import namedtuple

Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')
PRIMITIVES = ['none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect']

# first order
A = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1),  # node 2
                     ('skip_connect', 0), ('sep_conv_3x3', 1)],  # node 3
             normal_concat=range(2, 4),
             reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1),],
             reduce_concat=[2, 3],)
B = (Genotype(normal=[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 2)],
              normal_concat=[2, 3], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2),
                                            ('max_pool_3x3', 1)], reduce_concat=[2, 3]))
"""


def test_a_file_with_several_definitions_selects_by_name(tmp_path: Path, capsys) -> None:
    path = tmp_path / "genotypes.py"
    path.write_text(DARTS_STYLE_FILE)
    found = parse_genotype_file_text(DARTS_STYLE_FILE)
    assert list(found) == ["A", "B"] and found["A"].normal.nodes[1][0].op == "skip_connect"
    with pytest.raises(GenotypeError, match=r"defines 2 genotypes \(A, B\): select one as .*genotypes.py:NAME"):
        load_genotype(path)
    assert load_genotype(f"{path}:B") == found["B"] == load_genotype(path, name="B")
    with pytest.raises(GenotypeError, match="no genotype named 'C': it defines A, B"):
        load_genotype(f"{path}:C")
    assert main(["genotype", f"{path}:A", "--to", "json"]) == 0
    assert Genotype.from_json(capsys.readouterr().out) == found["A"]
    assert main(["genotype", str(path)]) == 2
    assert "select one as" in capsys.readouterr().err
