"""Cell diagrams in the style of the DARTS-family papers, drawn with matplotlib alone.

A cell is drawn left to right as the papers draw it: the two inputs ``c_{k-2}`` and ``c_{k-1}``
(green), the intermediate nodes ``0 .. N-1`` (blue), the output ``c_{k}`` (yellow), an arrow per
edge labelled with its op, and grey arrows from the concatenated nodes to the output. Any in-degree
works (DOTS, D-DARTS, Stretchable Cells); a node without inputs is drawn dashed. Arrows are
coloured by op family (convolutions, pooling, skip, other) so that the share of parametric ops is
visible at a glance.

Why matplotlib and not graphviz: matplotlib is already the package's plotting dependency (the
``viz`` extra), while graphviz would add a system package (``dot``) to every machine that renders
a diagram; the layout of a cell is regular enough to place by hand.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import atomic_write_bytes
from ..models.genotype import NUM_INPUTS, CellGenotype, Genotype

FORMATS = ("png", "svg", "pdf")
COLOURS = {"input": "#c1e6c1", "node": "#add8e6", "output": "#eee8aa"}
OP_COLOURS = {"conv": "#1f5fa8", "pool": "#d2691e", "skip": "#2e8b57", "none": "#999999", "other": "#7b3f99"}


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display), or a :class:`ConfigError` naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("drawing needs matplotlib: pip install 'nni-decouple[viz]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def op_family(op: str) -> str:
    if "conv" in op:
        return "conv"
    if "pool" in op:
        return "pool"
    if op in ("skip_connect", "identity"):
        return "skip"
    if op in ("none", "zero"):
        return "none"
    return "other"


RANK_GAP, ROW_GAP = 3.0, 1.25  # data units between layers (ranks) and between nodes of a rank
#: Half-width and half-height of a node's box in data units (arrows stop at the box).
BOX = {"input": (0.5, 0.3), "output": (0.38, 0.3), "node": (0.28, 0.28)}


def ranks(cell: CellGenotype) -> dict[int, int]:
    """Layer of every node, as graphviz's ``dot`` ranks it: inputs 0, a node one after its latest
    source (nodes without inputs next to the inputs), the output after all."""
    rank = {0: 0, 1: 0}
    for i, node in enumerate(cell.nodes):
        rank[NUM_INPUTS + i] = 1 + max((rank[e.source] for e in node), default=0)
    rank[-1] = 1 + max(rank.values())
    return rank


def layout(cell: CellGenotype) -> dict[int, tuple[float, float]]:
    """Node id -> (x, y): ranks left to right; within a rank nodes ordered by the mean height of
    their sources (fewer crossings) and centred. ``-1`` is the output."""
    rank = ranks(cell)
    pos: dict[int, tuple[float, float]] = {0: (0.0, 0.9 * ROW_GAP), 1: (0.0, -0.9 * ROW_GAP)}
    sources = {NUM_INPUTS + i: [e.source for e in node] for i, node in enumerate(cell.nodes)}
    sources[-1] = list(cell.concat)
    for r in range(1, rank[-1] + 1):
        members = [n for n, k in rank.items() if k == r]
        members.sort(key=lambda n: (-sum(pos[s][1] for s in sources[n]) / max(1, len(sources[n])), n))
        for row, n in enumerate(members):
            pos[n] = (r * RANK_GAP, ((len(members) - 1) / 2 - row) * ROW_GAP)
    return pos


def _node_text(node: int) -> str:
    if node == 0:
        return r"$c_{k-2}$"
    if node == 1:
        return r"$c_{k-1}$"
    if node == -1:
        return r"$c_{k}$"
    return str(node - NUM_INPUTS)


def _kind(node: int) -> str:
    return "input" if node in (0, 1) else "output" if node == -1 else "node"


def _clip(p: tuple[float, float], towards: tuple[float, float], node: int) -> tuple[float, float]:
    """The point where the segment from ``p`` to ``towards`` leaves the box of ``node`` at ``p``."""
    dx, dy = towards[0] - p[0], towards[1] - p[1]
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    rx, ry = BOX[_kind(node)]
    d = 1.0 / math.sqrt((ux / rx) ** 2 + (uy / ry) ** 2) + 0.06
    return p[0] + d * ux, p[1] + d * uy


def draw_cell(ax: Any, cell: CellGenotype, title: str | None = None, *, fontsize: float = 8.0) -> None:
    """Draw ``cell`` on the matplotlib axes ``ax``."""
    from matplotlib.patches import FancyArrowPatch

    pos = layout(cell)
    rank = ranks(cell)
    has_inputs = {t for t, _ in cell.edges()}
    used = {edge.source for _, edge in cell.edges()} | set(cell.concat)

    def arrow(src: int, dst: int, colour: str, label: str | None, lw: float = 1.2) -> None:
        p0, p1 = pos[src], pos[dst]
        span = rank[dst] - rank[src]
        # an edge over more than one layer bends away from the middle so that it misses the nodes between
        # (the bulge, 0.5 * rad * chord, stays under 0.7 units so that long edges keep inside the cell).
        a, b = _clip(p0, p1, src), _clip(p1, p0, dst)
        chord = math.hypot(b[0] - a[0], b[1] - a[1])
        rad = 0.0 if span <= 1 else min(0.25, 1.4 / chord) * (-1 if (p0[1] + p1[1]) >= 0 else 1)
        ax.add_patch(FancyArrowPatch(a, b, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=10,
                                     color=colour, lw=lw, shrinkA=0, shrinkB=0, zorder=1, clip_on=False))
        if label:
            # A straight edge is labelled past its middle, where the fans of c_{k-2} and c_{k-1} have
            # parted; an arc at its apex (arc3's control point is the chord midpoint moved by
            # rad * chord along the normal, and the curve passes halfway to it).
            dx, dy = b[0] - a[0], b[1] - a[1]
            t = 0.58 if rad == 0 else 0.5
            ax.text(a[0] + t * dx + 0.5 * rad * dy, a[1] + t * dy - 0.5 * rad * dx, label, fontsize=fontsize,
                    color=colour, ha="center", va="center", zorder=3,
                    bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.9})

    for target, edge in cell.edges():
        arrow(edge.source, target, OP_COLOURS[op_family(edge.op)], edge.op)
    for node in cell.concat:
        arrow(node, -1, "#999999", None, lw=0.9)

    for node, (x, y) in pos.items():
        kind = _kind(node)
        live = kind != "node" or node in used or node in has_inputs
        box = {"boxstyle": "round,pad=0.35" if kind == "node" else "square,pad=0.35", "fc": COLOURS[kind],
               "ec": "black" if live else "#aaaaaa", "lw": 1.0, "linestyle": "-" if live else "--"}
        ax.text(x, y, _node_text(node), ha="center", va="center", fontsize=fontsize + 2, bbox=box, zorder=4,
                color="black" if live else "#888888")

    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize + 2)


def _extent(cell: CellGenotype) -> tuple[float, float]:
    """Width and height of a cell's drawing in data units."""
    pos = layout(cell)
    xs, ys = [p[0] for p in pos.values()], [p[1] for p in pos.values()]
    return max(xs) - min(xs) + 1.3, max(ys) - min(ys) + 1.8


def cell_titles(genotype: Genotype) -> dict[str, str]:
    """A human title per cell label: "normal cell", "reduction cell", "layer 3 (reduction)"."""
    titles = {}
    for label in genotype.cells():
        if label == "normal":
            titles[label] = "normal cell"
        elif label == "reduce":
            titles[label] = "reduction cell"
        else:
            kind, _, layer = label.partition("_")
            titles[label] = f"layer {layer}" + (" (reduction)" if kind == "reduce" else "")
    return titles


def cell_figure(genotype: Genotype, cells: Sequence[str] | None = None, columns: int | None = None,
                title: str | None = None) -> Any:
    """A matplotlib figure with one diagram per cell (all cells, or the labels in ``cells``)."""
    plt = pyplot()
    every = genotype.cells()
    labels = list(cells) if cells else list(every)
    unknown = [label for label in labels if label not in every]
    if unknown:
        raise ConfigError(f"no cell {', '.join(map(repr, unknown))} in this genotype: its cells are "
                          f"{', '.join(every)}")
    titles = cell_titles(genotype)
    extents = [_extent(every[label]) for label in labels]
    width, height = max(w for w, _ in extents), max(h for _, h in extents)
    columns = columns or (2 if len(labels) <= 8 else 3)
    columns = max(1, min(columns, len(labels)))
    rows = math.ceil(len(labels) / columns)
    inch = 0.62  # inches per data unit: room for the op names at 8 pt
    fig, axes = plt.subplots(rows, columns, squeeze=False,
                             figsize=(width * inch * columns, (height * inch + 0.35) * rows + (0.4 if title else 0)))
    for ax in axes.flat[len(labels):]:
        ax.axis("off")
    for ax, label in zip(axes.flat, labels, strict=False):
        draw_cell(ax, every[label], titles[label])
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def save_diagram(genotype: Genotype, path: str | Path, *, cells: Sequence[str] | None = None,
                 columns: int | None = None, title: str | None = None, dpi: int = 120) -> Path:
    """Draw the cells of ``genotype`` to ``path``; the format follows the suffix (png, svg or pdf)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(f"cannot write a diagram as {path.suffix or 'a file without suffix'!r}: "
                          f"name the output .png, .svg or .pdf")
    plt = pyplot()
    fig = cell_figure(genotype, cells, columns, title)
    try:
        # SVG keeps its labels as text (searchable, selectable, smaller) rather than glyph outlines.
        buffer = io.BytesIO()
        with plt.rc_context({"svg.fonttype": "none"}):
            fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
