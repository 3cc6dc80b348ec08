"""The architecture data type: what a search finds and what a network is built from.

A :class:`Genotype` holds either two cells shared by type (``normal`` and ``reduce``, the DARTS
layout) or one cell per layer (``layers`` plus the ``reductions`` positions: global search, D-DARTS,
DNAS). A :class:`CellGenotype` lists, for every intermediate node, its input edges as
``(op, source)``, where sources ``0`` and ``1`` are the cell's two inputs (c_{k-2}, c_{k-1}) and
``2 + i`` is intermediate node ``i``. A node may have any number of inputs (DOTS with c_m sets,
D-DARTS, Stretchable Cells); a node with none is allowed only when nothing uses it.

Readers and writers: JSON (the package's own format), NNI's exported arch dict (labels
``{cell}/op_{node}_{k}`` and ``{cell}/input_{node}_{k}``), and the text in which the field
publishes architectures: DARTS' ``Genotype(normal=..., normal_concat=..., ...)`` and D-DARTS'
``Genotype_nested(genes=..., concat=..., reductions=...)``. Text is read with :mod:`ast`,
never ``eval``. This module imports no torch and no NNI.
"""

from __future__ import annotations

import ast
import json
import operator
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GenotypeError, UnknownOpError

FORMAT = "nni-decouple.genotype/1"
NUM_INPUTS = 2  # a cell's inputs: the outputs of the two previous cells
#: More intermediate nodes than this in one cell is taken for a malformed file, not built (the papers
#: use 4 to 9); it keeps a typo such as node 10**9 from allocating a billion empty nodes.
MAX_NODES = 256

__all__ = [
    "Edge", "CellGenotype", "Genotype", "cell_label", "reduction_layers",
    "parse_genotype_text", "parse_genotype_file", "parse_genotype_file_text", "select_genotype", "split_selection",
    "load_genotype",
    "save_genotype",
]


def reduction_layers(layers: int) -> tuple[int, ...]:
    """The DARTS reduction positions for ``layers`` cells: ``L // 3`` and ``2L // 3``."""
    if layers < 3:
        raise GenotypeError(f"a cell network needs at least 3 layers (got {layers}): use --layers >= 3")
    return (layers // 3, 2 * layers // 3)


def _index(value: Any, what: str) -> int:
    """A whole number (Python or NumPy int, not bool), else a :class:`GenotypeError` naming ``what``."""
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise GenotypeError(f"{what} must be a whole number, got {value!r:.60}")


def cell_label(layer: int, reduction: bool, per_layer: bool) -> str:
    """The NNI label of the cell at ``layer``: one label per cell type (shared) or per layer."""
    kind = "reduce" if reduction else "normal"
    return f"{kind}_{layer}" if per_layer else kind


@dataclass(frozen=True)
class Edge:
    """One input edge of a node: the op applied to the state ``source``."""

    op: str
    source: int


@dataclass(frozen=True)
class CellGenotype:
    """A cell: ``nodes[i]`` are the input edges of intermediate node ``i + 2``; ``concat`` the
    node ids whose outputs the cell concatenates."""

    nodes: tuple[tuple[Edge, ...], ...]
    concat: tuple[int, ...]

    @classmethod
    def from_edges(cls, nodes: Iterable[Iterable[tuple[str, int]]], concat: Iterable[int] | None = None,
                   ) -> CellGenotype:
        """Build from ``[[(op, source), ...], ...]``; ``concat`` defaults to every node with inputs."""
        try:
            rows = [[tuple(edge) for edge in node] for node in nodes]
            if len(rows) > MAX_NODES:
                raise GenotypeError(f"a cell has {len(rows)} intermediate nodes, more than {MAX_NODES}: "
                                    f"the file is malformed")
            if any(len(edge) != 2 for node in rows for edge in node):
                raise ValueError
            built = tuple(tuple(Edge(str(op), _index(src, f"the source of a {op!r:.30} edge")) for op, src in node)
                          for node in rows)
            if concat is None:
                concat = [i + NUM_INPUTS for i, node in enumerate(built) if node]
            concat_ids = tuple(_index(c, "a concat entry") for c in concat)
        except (TypeError, ValueError) as e:
            if isinstance(e, GenotypeError):
                raise
            raise GenotypeError("a cell is a list of nodes, each a list of (op, source) pairs, and concat a list of "
                                "node ids") from None
        return cls(built, concat_ids)

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def edges(self) -> Iterable[tuple[int, Edge]]:
        """Every edge as ``(target node id, edge)``."""
        for i, node in enumerate(self.nodes):
            for edge in node:
                yield i + NUM_INPUTS, edge

    def ops(self) -> list[str]:
        return [edge.op for _, edge in self.edges()]

    def count(self, op: str) -> int:
        """How many edges use ``op`` (e.g. skip connections, the quantity DARTS inflates)."""
        return sum(1 for name in self.ops() if name == op)

    def validate(self, where: str = "cell", known_ops: Iterable[str] | None = None) -> CellGenotype:
        """Check the cell is a well-formed DAG; raise :class:`GenotypeError` naming the fault."""
        if not self.nodes:
            raise GenotypeError(f"{where} has no intermediate node: give at least one node with inputs")
        ops = set(known_ops) if known_ops is not None else _registered_ops()
        used: set[int] = set(self.concat)
        for target, edge in self.edges():
            if ops is not None and edge.op not in ops:
                raise UnknownOpError(
                    f"{where}: unknown op {edge.op!r} on the edge {edge.source}->{target}; "
                    f"known ops are {', '.join(sorted(ops))}"
                )
            if not isinstance(edge.source, int) or not 0 <= edge.source < target:
                raise GenotypeError(
                    f"{where}: node {target} takes input {edge.source!r}, but a node can only take the cell "
                    f"inputs 0, 1 or an earlier node (0..{target - 1})"
                )
            used.add(edge.source)
        if not self.concat:
            raise GenotypeError(f"{where}: the concat list is empty: name the nodes the cell outputs")
        if len(set(self.concat)) != len(self.concat):
            raise GenotypeError(f"{where}: concat {list(self.concat)} names a node twice")
        last = self.num_nodes + NUM_INPUTS - 1
        for c in self.concat:
            if not NUM_INPUTS <= c <= last:
                raise GenotypeError(
                    f"{where}: concat names node {c}, but the intermediate nodes are {NUM_INPUTS}..{last}"
                )
        for i, node in enumerate(self.nodes):
            node_id = i + NUM_INPUTS
            if not node and node_id in used:
                raise GenotypeError(
                    f"{where}: node {node_id} has no input but is used "
                    f"({'in concat' if node_id in self.concat else 'as an input of a later node'}); "
                    f"give it an input edge or remove it from concat and from the other nodes' inputs"
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [[[e.op, e.source] for e in node] for node in self.nodes], "concat": list(self.concat)}

    def to_arch(self, label: str) -> dict[str, Any]:
        """This cell's entries of NNI's arch dict under ``label`` (see :meth:`Genotype.to_arch`)."""
        arch: dict[str, Any] = {}
        for i, node in enumerate(self.nodes):
            for k, edge in enumerate(node):
                arch[f"{label}/op_{i + NUM_INPUTS}_{k}"] = edge.op
                arch[f"{label}/input_{i + NUM_INPUTS}_{k}"] = [edge.source]
        if list(self.concat) != list(range(NUM_INPUTS, NUM_INPUTS + self.num_nodes)):
            arch[f"{label}/concat"] = list(self.concat)
        if self.nodes and not self.nodes[-1]:  # trailing nodes without edges leave no op/input entries
            arch[f"{label}/num_nodes"] = self.num_nodes
        return arch

    @classmethod
    def from_dict(cls, data: Any, where: str = "cell") -> CellGenotype:
        if not isinstance(data, Mapping) or "nodes" not in data:
            raise GenotypeError(f"{where} must be an object with 'nodes' (and optionally 'concat'), got {data!r:.80}")
        nodes = data["nodes"]
        if not isinstance(nodes, list) or not all(isinstance(n, list) for n in nodes):
            raise GenotypeError(f"{where}.nodes must be a list of lists of [op, source] pairs")
        edges = []
        for i, node in enumerate(nodes):
            row = []
            for edge in node:
                if (not isinstance(edge, (list, tuple)) or len(edge) != 2 or not isinstance(edge[0], str)
                        or isinstance(edge[1], bool) or not isinstance(edge[1], int)):
                    raise GenotypeError(
                        f"{where}: node {i + NUM_INPUTS} has the edge {edge!r:.60}; "
                        f"each edge is [op name, source index]"
                    )
                row.append((edge[0], edge[1]))
            edges.append(row)
        concat = data.get("concat")
        if concat is not None and (not isinstance(concat, list)
                                   or not all(isinstance(c, int) and not isinstance(c, bool) for c in concat)):
            raise GenotypeError(f"{where}.concat must be a list of node indices, got {concat!r:.60}")
        return cls.from_edges(edges, concat)


@dataclass(frozen=True)
class Genotype:
    """A searched architecture: shared ``normal``/``reduce`` cells, or one cell per layer."""

    normal: CellGenotype | None = None
    reduce: CellGenotype | None = None
    layers: tuple[CellGenotype, ...] = ()
    reductions: tuple[int, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def per_layer(self) -> bool:
        return bool(self.layers)

    def cells(self) -> dict[str, CellGenotype]:
        """Every cell by its NNI label (``normal``/``reduce`` or ``normal_3``/``reduce_5``...)."""
        if self.per_layer:
            return {cell_label(i, i in self.reductions, True): c for i, c in enumerate(self.layers)}
        return {"normal": self.normal, "reduce": self.reduce}  # type: ignore[dict-item]

    def cell_at(self, layer: int, num_layers: int) -> tuple[CellGenotype, bool]:
        """The cell used at ``layer`` of a ``num_layers`` network, and whether it reduces."""
        if self.per_layer:
            if num_layers != len(self.layers):
                raise GenotypeError(
                    f"this per-layer genotype has {len(self.layers)} cells, but a {num_layers}-layer network was "
                    f"asked for: build it with layers={len(self.layers)} (or derive a deeper one first)"
                )
            return self.layers[layer], layer in self.reductions
        reduce = layer in reduction_layers(num_layers)
        return (self.reduce if reduce else self.normal), reduce  # type: ignore[return-value]

    def reduction_positions(self, num_layers: int) -> tuple[int, ...]:
        return self.reductions if self.per_layer else reduction_layers(num_layers)

    def count(self, op: str) -> dict[str, int]:
        """Per-cell count of an op, e.g. ``count('skip_connect')``."""
        return {label: cell.count(op) for label, cell in self.cells().items()}

    def validate(self, known_ops: Iterable[str] | None = None) -> Genotype:
        known = list(known_ops) if known_ops is not None else None
        if self.per_layer:
            if self.normal is not None or self.reduce is not None:
                raise GenotypeError("a genotype has either normal/reduce cells or per-layer cells, not both")
            n = len(self.layers)
            bad = [r for r in self.reductions if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < n]
            if bad or len(set(self.reductions)) != len(self.reductions):
                raise GenotypeError(
                    f"reductions {list(self.reductions)} must be distinct layer indices in 0..{n - 1}"
                )
        elif self.normal is None or self.reduce is None:
            raise GenotypeError("a shared-cell genotype needs both a 'normal' and a 'reduce' cell")
        for label, cell in self.cells().items():
            cell.validate(f"{label} cell", known)
        return self

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT}
        if self.per_layer:
            data["layers"] = [c.to_dict() for c in self.layers]
            data["reductions"] = list(self.reductions)
        else:
            data["normal"] = self.normal.to_dict()  # type: ignore[union-attr]
            data["reduce"] = self.reduce.to_dict()  # type: ignore[union-attr]
        if self.meta:
            data["meta"] = self.meta
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        if not isinstance(data, Mapping):
            raise GenotypeError(f"a genotype must be a JSON object, got {type(data).__name__}")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise GenotypeError(f"unsupported genotype format {fmt!r}: this version reads {FORMAT!r}")
        meta = data.get("meta") or {}
        if not isinstance(meta, Mapping):
            raise GenotypeError("'meta' must be an object")
        if "layers" in data:
            layers = data["layers"]
            if not isinstance(layers, list) or not layers:
                raise GenotypeError("'layers' must be a non-empty list of cells")
            reductions = data.get("reductions", [])
            if not isinstance(reductions, list) or not all(
                    isinstance(r, int) and not isinstance(r, bool) for r in reductions):
                raise GenotypeError("'reductions' must be a list of layer indices")
            cells = tuple(CellGenotype.from_dict(c, f"layers[{i}]") for i, c in enumerate(layers))
            return cls(layers=cells, reductions=tuple(reductions), meta=dict(meta))
        if "normal" in data and "reduce" in data:
            return cls(normal=CellGenotype.from_dict(data["normal"], "normal"),
                       reduce=CellGenotype.from_dict(data["reduce"], "reduce"), meta=dict(meta))
        raise GenotypeError("a genotype needs 'normal' and 'reduce' cells, or 'layers' and 'reductions'")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
        except RecursionError:
            raise GenotypeError("not a genotype: the JSON is nested too deeply") from None
        return cls.from_dict(data).validate()

    # ------------------------------------------------------------------ NNI arch dict
    def to_arch(self) -> dict[str, Any]:
        """NNI's exported-architecture dict (``{label}/op_{i}_{k}``, ``{label}/input_{i}_{k}``).

        A ``{label}/concat`` entry is added only where the cell does not concatenate every node
        (NNI's own cells always concatenate all), and ``{label}/num_nodes`` only where the last nodes
        have no input edge (nothing else would record them).
        """
        arch: dict[str, Any] = {}
        for label, cell in self.cells().items():
            arch.update(cell.to_arch(label))
        return arch

    @classmethod
    def from_arch(cls, arch: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Genotype:
        """Read NNI's exported dict; cell labels decide the layout (see :func:`cell_label`)."""
        cells: dict[str, dict[int, dict[int, list]]] = {}
        concats: dict[str, list[int]] = {}
        pattern = re.compile(r"^(?P<label>.+)/(?P<kind>op|input)_(?P<node>\d+)_(?P<k>\d+)$")
        if not isinstance(arch, Mapping):
            raise GenotypeError(f"an NNI arch dict must be a mapping, got {type(arch).__name__}")
        counts: dict[str, int] = {}
        for key, value in arch.items():
            key = str(key)
            if key.endswith("/num_nodes"):
                count = _index(value, f"arch entry {key!r}")
                if not 1 <= count <= MAX_NODES:
                    raise GenotypeError(f"arch entry {key!r} must be 1..{MAX_NODES}, got {count}")
                counts[key[: -len("/num_nodes")]] = count
                continue
            if key.endswith("/concat"):
                if not isinstance(value, (list, tuple)):
                    raise GenotypeError(f"arch entry {key!r} must be a list of node ids, got {value!r:.60}")
                concats[key[: -len("/concat")]] = [_index(c, f"arch entry {key!r}") for c in value]
                continue
            m = pattern.match(key)
            if m is None:
                continue  # mutables that are not cell edges (e.g. other choices in a custom space)
            node, k = int(m["node"]), int(m["k"])
            if not NUM_INPUTS <= node < NUM_INPUTS + MAX_NODES:
                raise GenotypeError(f"arch entry {key!r} names node {node}: nodes are {NUM_INPUTS}.."
                                    f"{NUM_INPUTS + MAX_NODES - 1}")
            slot = cells.setdefault(m["label"], {}).setdefault(node, {}).setdefault(k, [None, None])
            if m["kind"] == "op":
                slot[0] = value
            else:
                src = value[0] if isinstance(value, (list, tuple)) and len(value) == 1 else value
                if isinstance(src, bool) or not isinstance(src, int):
                    raise GenotypeError(f"arch entry {key!r} must be [source index], got {value!r}")
                slot[1] = src
        if not cells:
            raise GenotypeError("the arch dict has no '{cell}/op_{node}_{k}' entries: is it from a cell search space?")
        built: dict[str, CellGenotype] = {}
        for label, nodes in cells.items():
            last = min(max(list(nodes) + concats.get(label, [NUM_INPUTS])
                           + [NUM_INPUTS + counts.get(label, 1) - 1]), NUM_INPUTS + MAX_NODES)
            rows = []
            for node_id in range(NUM_INPUTS, last + 1):
                edges = nodes.get(node_id, {})
                row = []
                for k in sorted(edges):
                    op, src = edges[k]
                    if op is None or src is None:
                        raise GenotypeError(f"arch dict: cell {label!r} node {node_id} edge {k} lacks its op or input")
                    row.append((op, src))
                rows.append(row)
            concat = concats.get(label, list(range(NUM_INPUTS, last + 1)))
            built[label] = CellGenotype.from_edges(rows, concat)
        meta = dict(meta or {})
        if set(built) == {"normal", "reduce"}:
            return cls(normal=built["normal"], reduce=built["reduce"], meta=meta).validate()
        per_layer = {}
        reductions = []
        for label, cell in built.items():
            m = re.fullmatch(r"(normal|reduce)_(\d+)", label)
            if m is None:
                raise GenotypeError(
                    f"arch dict cell label {label!r} is neither shared ('normal'/'reduce') nor per-layer "
                    f"('normal_<i>'/'reduce_<i>')"
                )
            per_layer[int(m[2])] = cell
            if m[1] == "reduce":
                reductions.append(int(m[2]))
        if sorted(per_layer) != list(range(len(per_layer))):
            raise GenotypeError(
                f"arch dict per-layer cells {sorted(per_layer)} are not numbered 0..{len(per_layer) - 1}")
        return cls(layers=tuple(per_layer[i] for i in range(len(per_layer))),
                   reductions=tuple(sorted(reductions)), meta=meta).validate()

    # ------------------------------------------------------------------ published text
    def to_text(self) -> str:
        """The genotype as text that :func:`parse_genotype_text` reads back to an equal genotype.

        The field's published forms where they describe this genotype exactly: DARTS'
        ``Genotype(normal=[(op, source), ...], normal_concat=..., reduce=..., reduce_concat=...)`` (two
        inputs per node) and D-DARTS' ``Genotype_nested(genes=[[(op, to, from), ...], ...], reductions=...)``.
        Otherwise (nodes with one, three or no inputs, as Stretchable Cells finds; a per-layer cell whose
        concat is not its nodes with inputs) the node-list form, which keeps every edge's target node:
        ``Genotype(normal=[[(op, source), ...] per node], normal_concat=..., reduce=..., reduce_concat=...)``
        or ``Genotype(layers=[cell, ...], layers_concat=[concat, ...], reductions=[...])`` with each cell
        a list of nodes, each node the list of its ``(op, source)`` edges.
        """
        if not self.per_layer:
            n, r = self.normal, self.reduce
            published = (f"Genotype(normal={_pairs(n)}, normal_concat={list(n.concat)}, "  # type: ignore[union-attr]
                         f"reduce={_pairs(r)}, reduce_concat={list(r.concat)})")  # type: ignore[union-attr]
            exact = (f"Genotype(normal={_node_lists(n)}, normal_concat={list(n.concat)}, "  # type: ignore[arg-type]
                     f"reduce={_node_lists(r)}, reduce_concat={list(r.concat)})")  # type: ignore[arg-type,union-attr]
        else:
            genes = [[(e.op, t, e.source) for t, e in c.edges()] for c in self.layers]
            published = f"Genotype_nested(genes={genes}, reductions={list(self.reductions)})"
            exact = (f"Genotype(layers={[_node_lists(c) for c in self.layers]}, "
                     f"layers_concat={[list(c.concat) for c in self.layers]}, reductions={list(self.reductions)})")
        try:
            if parse_genotype_text(published) == self:
                return published
        except GenotypeError:
            pass
        return exact


def _pairs(cell: CellGenotype) -> list[tuple[str, int]]:
    return [(e.op, e.source) for _, e in cell.edges()]


def _node_lists(cell: CellGenotype) -> list[list[tuple[str, int]]]:
    return [[(e.op, e.source) for e in node] for node in cell.nodes]


def _registered_ops() -> set[str]:
    """The op names a genotype may use: the op registry's once it is loaded (it holds the ops a user
    registered as well), else the package's own ops, whose names need no torch (:mod:`.op_sets`)."""
    ops = sys.modules.get(f"{__package__}.ops")
    if ops is not None and hasattr(ops, "OPS"):
        return set(ops.OPS)
    from .op_sets import BUILTIN_OPS

    return set(BUILTIN_OPS)


# ---------------------------------------------------------------------- text readers
def _literal(node: ast.AST, where: str) -> Any:
    """A safe literal: numbers, strings, lists/tuples of them, and ``range(a, b[, c])``."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, str, float):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, where) for e in node.elts]
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in (int, float)):
        return -node.operand.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords and 1 <= len(node.args) <= 3):
        args = [_literal(a, where) for a in node.args]
        if all(isinstance(a, int) for a in args) and (len(args) < 3 or args[2] != 0):
            if len(range(*args)) > MAX_NODES:
                raise GenotypeError(f"{where}: {ast.unparse(node)!r:.60} names more than {MAX_NODES} nodes")
            return list(range(*args))
    raise GenotypeError(
        f"{where}: unsupported expression {ast.unparse(node)!r:.60}; only literals and range() are read")


def _from_call(call: ast.Call, where: str) -> Genotype:
    name = call.func.id if isinstance(call.func, ast.Name) else ast.unparse(call.func)
    if call.args:
        raise GenotypeError(f"{where}: {name}(...) must use keyword arguments (normal=..., reduce=...)")
    kw = {k.arg: _literal(k.value, where) for k in call.keywords}
    if name == "Genotype" and "layers" in kw:
        return _per_layer_cells(kw, where)
    if name == "Genotype":
        missing = {"normal", "reduce"} - set(kw)
        if missing:
            raise GenotypeError(f"{where}: Genotype(...) lacks {', '.join(sorted(missing))} (shared cells: normal=, "
                                f"reduce=; one cell per layer: layers=, layers_concat=, reductions=)")
        cells = {kind: _cell_from_text(kw[kind], kw.get(f"{kind}_concat"), f"{where}: {kind}")
                 for kind in ("normal", "reduce")}
        return Genotype(normal=cells["normal"], reduce=cells["reduce"]).validate()
    if name == "Genotype_nested":
        genes = kw.get("genes")
        if not isinstance(genes, list) or not genes:
            raise GenotypeError(f"{where}: Genotype_nested(...) needs genes=[per-cell lists of (op, to, from)]")
        layers = []
        for i, gene in enumerate(genes):
            if not isinstance(gene, list) or not all(isinstance(g, list) and len(g) == 3 for g in gene):
                raise GenotypeError(f"{where}: genes[{i}] must be a list of (op, to_node, from_node) triples")
            if not gene:
                raise GenotypeError(f"{where}: genes[{i}] is empty: every cell needs at least one edge")
            for _, to, _ in gene:
                if isinstance(to, bool) or not isinstance(to, int) or not NUM_INPUTS <= to < NUM_INPUTS + MAX_NODES:
                    raise GenotypeError(f"{where}: genes[{i}] has the target node {to!r}; targets start at 2 (nodes "
                                        f"{NUM_INPUTS}..{NUM_INPUTS + MAX_NODES - 1})")
            last = max(to for _, to, _ in gene)
            nodes: list[list[tuple[str, int]]] = [[] for _ in range(last - NUM_INPUTS + 1)]
            for op, to, src in gene:
                nodes[to - NUM_INPUTS].append((op, src))
            layers.append(_ddarts_cell(nodes, f"{where}: genes[{i}]"))
        reductions = kw.get("reductions", [])
        if not isinstance(reductions, list):
            raise GenotypeError(f"{where}: reductions must be a list of layer indices, got {reductions!r:.60}")
        return Genotype(layers=tuple(layers), reductions=tuple(reductions)).validate()
    raise GenotypeError(f"{where}: expected Genotype(...) or Genotype_nested(...), found {name}(...)")


def _is_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _cell_from_text(value: Any, concat: Any, where: str) -> CellGenotype:
    """A cell in DARTS' form (a flat list of (op, source) pairs, two per node) or in the node-list form
    (one list of (op, source) pairs per node, any number per node)."""
    if not isinstance(value, list):
        raise GenotypeError(f"{where} must be a list of (op, input) pairs")
    if all(_is_pair(p) for p in value) and value:  # DARTS: two inputs per node
        if len(value) % 2:
            raise GenotypeError(f"{where} must be a list of (op, input) pairs, two per node (or one list of pairs "
                                f"per node, for nodes with another number of inputs)")
        nodes = [value[i:i + 2] for i in range(0, len(value), 2)]
    elif all(isinstance(node, list) and all(_is_pair(p) for p in node) for node in value):
        nodes = value
    else:
        raise GenotypeError(f"{where} must be a list of (op, input) pairs, two per node, or one list of "
                            f"(op, input) pairs per node")
    return CellGenotype.from_edges(nodes, concat)


def _per_layer_cells(kw: dict[str, Any], where: str) -> Genotype:
    """``Genotype(layers=[cell, ...], layers_concat=[concat, ...], reductions=[...])``, the exact per-layer form."""
    layers, concats = kw["layers"], kw.get("layers_concat")
    if not isinstance(layers, list) or not layers:
        raise GenotypeError(f"{where}: layers must be a non-empty list of cells (each a list of nodes)")
    if concats is None:
        concats = [None] * len(layers)
    if not isinstance(concats, list) or len(concats) != len(layers):
        raise GenotypeError(f"{where}: layers_concat must give one concat list per cell ({len(layers)})")
    cells = tuple(_cell_from_text(cell, concat, f"{where}: layers[{i}]")
                  for i, (cell, concat) in enumerate(zip(layers, concats, strict=True)))
    reductions = kw.get("reductions", [])
    if not isinstance(reductions, list):
        raise GenotypeError(f"{where}: reductions must be a list of layer indices, got {reductions!r:.60}")
    return Genotype(layers=cells, reductions=tuple(reductions)).validate()


def _ddarts_cell(nodes: list[list[tuple[str, int]]], where: str) -> CellGenotype:
    """A D-DARTS cell as its own code reads it: edges from a node that has no edges are skipped
    (D-DARTS' ``DCOCell`` ``continue``s over them), repeatedly, and the cell concatenates exactly
    the nodes left with edges (the published ``concat`` is nominal)."""
    while True:
        empty = {i + NUM_INPUTS for i, node in enumerate(nodes) if not node}
        pruned = [[(op, src) for op, src in node if src not in empty] for node in nodes]
        if pruned == nodes:
            break
        nodes = pruned
    if not any(nodes):
        raise GenotypeError(
            f"{where}: no node of this cell has an input once edges from input-less nodes are dropped, so the cell "
            f"has no output (D-DARTS' own DCOCell fails on it too); fix the cell's genes"
        )
    return CellGenotype.from_edges(nodes)


#: Calls that define genotypes; other module-level statements (imports, ``namedtuple`` definitions, op
#: lists, as in the DARTS and DOTS repositories' genotypes.py) are read past.
GENOTYPE_CALLS = ("Genotype", "Genotype_nested")


def parse_genotype_file_text(text: str, where: str = "text") -> dict[str, Genotype]:
    """Every genotype in a Python-style text, keyed by its assigned name (``DARTS_V2 = Genotype(...)``),
    else by the ``## title`` comment above it (D-DARTS' files), else ``genotype_<i>``.

    The text is parsed as Python with :mod:`ast` (never evaluated), so a definition may span any number
    of lines, with comments, trailing commas and parentheses. Statements that are not genotypes
    (imports, ``Genotype = namedtuple(...)``, lists of op names) are skipped.
    """
    try:
        tree = ast.parse(text, mode="exec")
    except SyntaxError as e:
        raise GenotypeError(f"{where}, line {e.lineno}: not a genotype ({e.msg})") from None
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes, absurd nesting
        raise GenotypeError(f"{where}: not a genotype ({type(e).__name__})") from None
    lines = text.splitlines()
    found: dict[str, Genotype] = {}
    previous_end = 0
    for stmt in tree.body:
        at = f"{where}, line {stmt.lineno}"
        titles = [line.strip().lstrip("#").strip() for line in lines[previous_end: stmt.lineno - 1]
                  if line.strip().startswith("##")]
        previous_end = stmt.end_lineno or stmt.lineno
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.Expr):
            title = titles[-1] if titles else None
            title = title.removesuffix(".txt") if title else None
            name, value = title or f"genotype_{len(found)}", stmt.value
        else:
            raise GenotypeError(f"{at}: expected 'NAME = Genotype(...)' or 'Genotype(...)', found "
                                f"{ast.unparse(stmt)!r:.60}")
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id not in GENOTYPE_CALLS:
            if value.func.id == "namedtuple" or isinstance(stmt, ast.Assign) and name in GENOTYPE_CALLS:
                continue  # Genotype = namedtuple('Genotype', ...)
        elif not isinstance(value, ast.Call):
            if isinstance(stmt, ast.Assign):
                continue  # e.g. PRIMITIVES = [...]
            raise GenotypeError(f"{at}: expected a Genotype(...) call, found {ast.unparse(value)!r:.60}")
        found[name] = _from_call(value, at)
    if not found:
        raise GenotypeError(f"{where}: no genotype found: expected 'NAME = Genotype(...)' or 'Genotype(...)'")
    return found


def select_genotype(found: dict[str, Genotype], name: str | None, where: str) -> Genotype:
    """The genotype called ``name``; without a name, the only one (several are listed in the error)."""
    if name is not None:
        if name not in found:
            raise GenotypeError(f"{where} has no genotype named {name!r}: it defines {', '.join(found)}")
        return found[name]
    if len(found) != 1:
        raise GenotypeError(f"{where} defines {len(found)} genotypes ({', '.join(found)}): select one as "
                            f"{where}:NAME")
    return next(iter(found.values()))


def parse_genotype_text(text: str, where: str = "text", name: str | None = None) -> Genotype:
    """Read one genotype from Python-style text (see :func:`parse_genotype_file_text`): the one called
    ``name``, or the only one."""
    return select_genotype(parse_genotype_file_text(text, where), name, where)


def parse_genotype_file(path: str | os.PathLike) -> dict[str, Genotype]:
    path = Path(path)
    return parse_genotype_file_text(_read(path), str(path))


def _read(path: Path) -> str:
    if not path.is_file():
        raise GenotypeError(f"genotype file {str(path)!r} does not exist: check the path")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GenotypeError(f"genotype file {str(path)!r} is not UTF-8 text") from None


def split_selection(path: str | os.PathLike) -> tuple[Path, str | None]:
    """``FILE:NAME`` -> (FILE, NAME) when FILE exists and ``FILE:NAME`` does not; else (path, None)."""
    text = os.fspath(path)
    head, sep, name = text.rpartition(":")
    if sep and head and name.isidentifier() and not Path(text).exists() and Path(head).is_file():
        return Path(head), name
    return Path(text), None


def load_genotype(path: str | os.PathLike, name: str | None = None) -> Genotype:
    """Load a genotype from JSON (our format or an NNI arch dict) or from Python-style text.

    A text file may define several genotypes: select one with ``name`` or as ``FILE:NAME``.
    """
    path, selected = split_selection(path)
    name = name or selected
    if path.is_dir():
        candidate = path / "genotype.json"
        if not candidate.is_file():
            raise GenotypeError(f"{str(path)!r} is a directory without genotype.json: point at a run directory or file")
        path = candidate
    text = _read(path)
    where = str(path)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"{where}: malformed JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                                f"fix the file or re-export it") from None
        except RecursionError:
            raise GenotypeError(f"{where}: not a genotype (the JSON is nested too deeply)") from None
        if isinstance(data, Mapping) and ("format" in data or "layers" in data or "normal" in data):
            return Genotype.from_dict(data).validate()
        if isinstance(data, Mapping):
            return Genotype.from_arch(data)
        raise GenotypeError(f"{where}: expected a genotype object")
    return parse_genotype_text(text, where, name)


def save_genotype(genotype: Genotype, path: str | os.PathLike) -> Path:
    """Write a genotype as JSON atomically (a temporary file renamed into place)."""
    from ..io import atomic_write_text

    return atomic_write_text(Path(path), genotype.to_json() + "\n")

