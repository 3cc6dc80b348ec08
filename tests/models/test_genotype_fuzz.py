"""Malformed genotypes, generated: every one is refused with a GenotypeError (the package's own type,
with a message), never another exception, and the CLI leaves no file behind.

Each example is a *valid* released genotype broken by one mutation that is invalid by construction
(an unknown op, a source out of range or of the wrong type, a mis-shaped edge, node or concat, a
used node left without input, a missing cell, a truncated file, ...), so every example must fail.
Examples: 500 JSON documents (each read three ways) + 400 DARTS texts + 300 NNI arch dicts + 100
files through ``nni-decouple genotype`` = 1,300 malformed genotypes, derandomised for CI.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nni_decouple.cli import main
from nni_decouple.errors import GenotypeError
from nni_decouple.models.genotype import Genotype, load_genotype, parse_genotype_text
from nni_decouple.models.ops import OPS

BACKBONES = Path(__file__).resolve().parents[2] / "backbones"
SHARED = load_genotype(BACKBONES / "darts_v2.json")  # normal/reduce cells
PER_LAYER = load_genotype(BACKBONES / "dartopti_resnet18_edge_c10.json")  # one cell per layer, reductions
BASES = [SHARED.to_dict(), PER_LAYER.to_dict()]
for base in BASES:
    base.pop("meta", None)

def fuzz(examples: int) -> settings:
    """Reproducible in CI (derandomised, no example database), no deadline on a busy machine."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

#: Values of every wrong JSON type (for a place that wants a string, a whole number or a list).
junk = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
not_an_int = st.one_of(junk, st.text(max_size=6), st.lists(st.integers(), max_size=3))
not_a_list = st.one_of(junk, st.text(max_size=6), st.integers())
unknown_op = st.one_of(st.text(max_size=16).filter(lambda t: t not in OPS), st.integers(), st.none(),
                       st.lists(st.text(max_size=3), max_size=2))


def cells_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["layers"] if "layers" in doc else [doc["normal"], doc["reduce"]]


def used_node(draw: Any, cell: dict[str, Any]) -> int:
    """A node id the cell uses (in concat)."""
    return draw(st.sampled_from(cell["concat"]))


@st.composite
def malformed_documents(draw: Any) -> tuple[str, dict[str, Any] | Any]:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    cell = draw(st.sampled_from(cells_of(doc)))
    nodes = cell["nodes"]
    with_edges = [i for i, node in enumerate(nodes) if node]
    i = draw(st.sampled_from(with_edges))
    k = draw(st.integers(0, len(nodes[i]) - 1))
    target = i + 2
    kind = draw(st.sampled_from(["op", "source", "edge", "node", "nodes", "concat", "orphan", "cell", "format",
                                 "reductions", "document"]))
    if kind == "op":
        nodes[i][k][0] = draw(unknown_op)
    elif kind == "source":
        nodes[i][k][1] = draw(st.one_of(st.integers().filter(lambda v: not 0 <= v < target), not_an_int))
    elif kind == "edge":
        nodes[i][k] = draw(st.one_of(not_a_list, st.lists(st.integers(0, 1), max_size=4).filter(lambda e: len(e) != 2),
                                     st.tuples(st.sampled_from(sorted(OPS)), st.just(0), st.just(0)).map(list)))
    elif kind == "node":
        nodes[i] = draw(not_a_list.filter(lambda v: not isinstance(v, list)))
    elif kind == "nodes":
        cell["nodes"] = draw(st.one_of(st.just([]), not_a_list.filter(lambda v: not isinstance(v, list))))
        if cell["nodes"] == []:
            cell.pop("concat")
    elif kind == "concat":
        last = len(nodes) + 1
        cell["concat"] = draw(st.one_of(
            st.just([]), not_a_list.filter(lambda v: v is not None and not isinstance(v, list)),
            st.lists(not_an_int, min_size=1, max_size=3),
            st.integers().filter(lambda v: not 2 <= v <= last).map(lambda v: [*cell["concat"], v]),
            st.just([*cell["concat"], cell["concat"][0]])))
    elif kind == "orphan":  # a node every edge of which is removed, but the cell still outputs it
        node = used_node(draw, cell)
        nodes[node - 2] = []
    elif kind == "cell":
        doc.pop(draw(st.sampled_from(["layers"] if "layers" in doc else ["normal", "reduce"])))
    elif kind == "format":
        doc["format"] = draw(st.one_of(st.text(max_size=20).filter(lambda f: f != doc["format"]), junk))
    elif kind == "reductions":
        n = len(doc.get("layers", []))
        doc["layers" if n else "normal"] = doc.get("layers") or []  # a shared genotype gets an empty layer list
        doc["reductions"] = draw(st.one_of(
            not_a_list.filter(lambda v: not isinstance(v, list)),
            st.lists(st.integers().filter(lambda r: not 0 <= r < max(n, 1)), min_size=1, max_size=3),
            st.lists(not_an_int, min_size=1, max_size=2)))
    else:
        return kind, draw(st.one_of(not_a_list.filter(lambda v: not isinstance(v, dict)),
                                    st.lists(st.integers(), max_size=3)))
    return kind, doc


def assert_refused(call: Any, *args: Any) -> GenotypeError:
    with pytest.raises(GenotypeError) as info:  # any other exception type fails the test
        call(*args)
    assert str(info.value).strip(), "the error has no message"
    return info.value


@fuzz(500)
@given(malformed_documents())
def test_malformed_json_is_refused_every_way_it_is_read(example: tuple[str, Any]) -> None:
    _, doc = example
    assert_refused(lambda d: Genotype.from_dict(d).validate(), doc)
    text = json.dumps(doc)
    assert_refused(Genotype.from_json, text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "genotype.json"
        path.write_text(text)
        assert_refused(load_genotype, path)


@st.composite
def malformed_texts(draw: Any) -> str:
    """DARTS' published ``Genotype(...)`` text, broken."""
    pairs = {kind: [[e.op, e.source] for _, e in getattr(SHARED, kind).edges()] for kind in ("normal", "reduce")}
    concat = {kind: list(getattr(SHARED, kind).concat) for kind in ("normal", "reduce")}
    kind = draw(st.sampled_from(["normal", "reduce"]))
    p = draw(st.integers(0, len(pairs[kind]) - 1))
    target = p // 2 + 2
    literal = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.floats(allow_nan=False,
                        allow_infinity=False), st.lists(st.integers(), max_size=2))
    mutation = draw(st.sampled_from(["op", "source", "pair", "odd", "concat", "truncate", "expression"]))
    if mutation == "op":
        pairs[kind][p][0] = draw(st.one_of(st.text(max_size=12).filter(lambda t: t not in OPS), literal))
    elif mutation == "source":
        pairs[kind][p][1] = draw(st.one_of(st.integers().filter(lambda v: not 0 <= v < target), literal))
    elif mutation == "pair":
        pairs[kind][p] = draw(st.lists(st.integers(0, 1), max_size=4).filter(lambda e: len(e) != 2))
    elif mutation == "odd":  # pairs come two per node
        pairs[kind].pop(p)
    elif mutation == "concat":
        concat[kind] = draw(st.one_of(st.just([]), st.lists(st.integers().filter(lambda v: not 2 <= v <= 5),
                                                            min_size=1, max_size=2), literal.filter(
                                                                lambda v: not isinstance(v, list))))
    text = (f"Genotype(normal={pairs['normal']!r}, normal_concat={concat['normal']!r}, "
            f"reduce={pairs['reduce']!r}, reduce_concat={concat['reduce']!r})")
    if mutation == "truncate":  # a file cut short: the call is never closed
        return text[:draw(st.integers(0, len(text) - 1))]
    if mutation == "expression":  # code, not data: never evaluated
        code = draw(st.sampled_from(["__import__('os').getcwd()", "1 + 1", "-'a'", "[x for x in []]", "range(10**9)",
                                     "open('/etc/passwd')", "{1: 2}", "None", "...", "b'\\x00'"]))
        return text.replace(repr(pairs[kind][p]), code, 1)
    return text


@fuzz(400)
@given(malformed_texts())
def test_malformed_darts_text_is_refused(text: str) -> None:
    assert_refused(parse_genotype_text, text)


@st.composite
def malformed_arch_dicts(draw: Any) -> dict[str, Any]:
    arch = draw(st.sampled_from([SHARED, PER_LAYER])).to_arch()
    keys = sorted(arch)
    key = draw(st.sampled_from(keys))
    mutation = draw(st.sampled_from(["value", "drop", "concat", "node"]))
    if mutation == "drop":  # an op without its input, or the reverse
        arch.pop(key)
    elif mutation == "concat":
        label = key.split("/")[0]
        arch[f"{label}/concat"] = draw(st.one_of(not_a_list.filter(lambda v: not isinstance(v, (list, str))),
                                                 st.lists(st.integers().filter(lambda v: not 2 <= v <= 5),
                                                          min_size=1, max_size=2)))
    elif mutation == "node":  # an edge into a cell input, or into a node ids far beyond any cell
        label = key.split("/")[0]
        node = draw(st.one_of(st.integers(0, 1), st.integers(300, 10**12)))
        arch[f"{label}/op_{node}_0"], arch[f"{label}/input_{node}_0"] = "skip_connect", [0]
    elif "/op_" in key:
        arch[key] = draw(unknown_op)
    else:
        target = int(key.split("_")[-2])
        arch[key] = draw(st.one_of(st.integers().filter(lambda v: not 0 <= v < target).map(lambda v: [v]),
                                   not_an_int.filter(lambda v: not isinstance(v, list) or len(v) != 1)))
    return arch


@fuzz(300)
@given(malformed_arch_dicts())
def test_malformed_nni_arch_dict_is_refused(arch: dict[str, Any]) -> None:
    assert_refused(Genotype.from_arch, arch)


@fuzz(100)
@given(st.one_of(malformed_documents().map(lambda e: json.dumps(e[1]).encode()),
                 malformed_texts().map(str.encode),
                 st.binary(min_size=1, max_size=40).map(lambda b: b"\xff" + b)))  # not UTF-8
def test_the_cli_refuses_a_malformed_file_in_one_line_and_writes_nothing(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "bad.txt", Path(tmp) / "converted.json"
        path.write_bytes(content)
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(["genotype", str(path), "--to", "json", "--out", str(out)]) == 2
        message = err.getvalue().strip()
        assert message.startswith("nni-decouple") and len(message.splitlines()) == 1, message
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["bad.txt"]
