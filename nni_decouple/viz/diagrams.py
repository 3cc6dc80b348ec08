"""Cell diagrams in the style of the DARTS-family papers, drawn with matplotlib alone.

A cell is drawn left to right as the papers draw it: the two inputs ``c_{k-2}`` and ``c_{k-1}``
(green), the intermediate nodes ``0 .. N-1`` (blue), the output ``c_{k}`` (yellow), an arrow per
edge labelled with its op (the ops of an edge that holds several, as D-DARTS' cells do, stacked on
one arrow), and grey arrows from the concatenated nodes to the output. Any in-degree works (DOTS,
D-DARTS, Stretchable Cells); a node without inputs is drawn dashed. Arrows are coloured by op
family (convolutions, pooling, skip, other; dark grey for an edge of mixed families) so that the
share of parametric ops is visible at a glance.

Every label is placed in one place, :func:`plan_cell`: labels are measured as matplotlib renders
them, each goes to the first spot along its own arrow where it covers no node box and no other
label, and the layout is spread until every label has one; the figure then keeps exactly the scale
the placement assumed (``INCH`` inches per data unit).

Why matplotlib and not graphviz: matplotlib is already the package's plotting dependency (the
``viz`` extra), while graphviz would add a system package (``dot``) to every machine that renders
a diagram; the layout of a cell is regular enough to place by hand.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
INCH = 0.62  # inches per data unit in a figure: room for the op names at 8 pt
POINTS = INCH * 72  # points per data unit
#: Height in data units of the arc of an edge that skips one layer (it clears the node between), and what each
#: further skipped layer adds: longer edges nest outside shorter ones.
BULGE, BULGE_STEP = 0.7, 0.35
GAP = 2.0  # points kept free between two labels, and between a label and a node box
#: Where along its edge an op label may sit (0 at the source, 1 at the target), tried in this order.
LABEL_AT = (0.6, 0.5, 0.7, 0.4, 0.65, 0.55, 0.45, 0.75, 0.35, 0.3, 0.8, 0.25, 0.2)
#: The layout is spread by this factor until every label has a free place, at most SPREADS times.
SPREAD, SPREADS = 1.2, 8
NODE_PAD, LABEL_PAD = 0.35, 0.12  # box padding in units of the font size, as matplotlib's boxstyle counts it
TITLE, SUPTITLE = 0.35, 0.45  # inches above a diagram for its title, and above the figure for the figure's


def ranks(cell: CellGenotype) -> dict[int, int]:
    """Layer of every node, as graphviz's ``dot`` ranks it: inputs 0, a node one after its latest
    source (nodes without inputs next to the inputs), the output after all."""
    rank = {0: 0, 1: 0}
    for i, node in enumerate(cell.nodes):
        rank[NUM_INPUTS + i] = 1 + max((rank[e.source] for e in node), default=0)
    rank[-1] = 1 + max(rank.values())
    return rank


def layout(cell: CellGenotype, spread: float = 1.0) -> dict[int, tuple[float, float]]:
    """Node id -> (x, y): ranks left to right; within a rank nodes ordered by the mean height of
    their sources (fewer crossings) and centred. ``-1`` is the output. ``spread`` scales the gaps."""
    rank = ranks(cell)
    rank_gap, row_gap = RANK_GAP * spread, ROW_GAP * spread
    pos: dict[int, tuple[float, float]] = {0: (0.0, 0.9 * row_gap), 1: (0.0, -0.9 * row_gap)}
    sources = {NUM_INPUTS + i: [e.source for e in node] for i, node in enumerate(cell.nodes)}
    sources[-1] = list(cell.concat)
    for r in range(1, rank[-1] + 1):
        members = [n for n, k in rank.items() if k == r]
        members.sort(key=lambda n: (-sum(pos[s][1] for s in sources[n]) / max(1, len(sources[n])), n))
        for row, n in enumerate(members):
            pos[n] = (r * rank_gap, ((len(members) - 1) / 2 - row) * row_gap)
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


@functools.cache
def _text_size(text: str, fontsize: float, pad: float) -> tuple[float, float]:
    """Width and height in data units of ``text`` drawn at ``fontsize`` in a box padded by ``pad``, as
    matplotlib renders it (measured once per text on a scratch canvas at 72 dpi, where a pixel is a point)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(dpi=72)
    canvas = FigureCanvasAgg(fig)
    extent = fig.text(0, 0, text, fontsize=fontsize).get_window_extent(canvas.get_renderer())
    return (extent.width + 2 * pad * fontsize) / POINTS, (extent.height + 2 * pad * fontsize) / POINTS


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in data units


def _box(centre: tuple[float, float], size: tuple[float, float]) -> Box:
    return centre[0] - size[0] / 2, centre[1] - size[1] / 2, centre[0] + size[0] / 2, centre[1] + size[1] / 2


def _hits(box: Box, others: Sequence[Box]) -> bool:
    margin = GAP / POINTS
    return any(box[0] < o[2] + margin and o[0] < box[2] + margin and box[1] < o[3] + margin and o[1] < box[3] + margin
               for o in others)


def _clip(p: tuple[float, float], towards: tuple[float, float], half: tuple[float, float]) -> tuple[float, float]:
    """The point where the segment from ``p`` to ``towards`` leaves the box (half sizes ``half``) at ``p``."""
    dx, dy = towards[0] - p[0], towards[1] - p[1]
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    rx, ry = half
    d = 1.0 / math.sqrt((ux / rx) ** 2 + (uy / ry) ** 2) + 0.06
    return p[0] + d * ux, p[1] + d * uy


@dataclass(frozen=True)
class EdgeDrawing:
    """One arrow of a cell diagram: ``ops`` (every op the genotype puts on this source -> target pair; none
    for the grey arrows into the output), its ends, arc3's ``rad`` and the centre of its label block."""

    source: int
    target: int
    ops: tuple[str, ...]
    start: tuple[float, float]
    end: tuple[float, float]
    rad: float
    label_at: tuple[float, float] | None = None


@dataclass(frozen=True)
class CellDrawing:
    """Where everything of one cell goes, in data units (``INCH`` inches each): nodes, arrows, labels."""

    pos: dict[int, tuple[float, float]]
    edges: list[EdgeDrawing]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    fontsize: float
    placed: bool  # every label found a place clear of the node boxes and of the other labels

    @property
    def size(self) -> tuple[float, float]:
        return self.xlim[1] - self.xlim[0], self.ylim[1] - self.ylim[0]


def _along(edge: EdgeDrawing, t: float) -> tuple[float, float]:
    """The point at ``t`` on the arrow as matplotlib's arc3 draws it: a quadratic Bezier whose control point is
    the chord's midpoint moved by ``rad`` times the chord along its normal."""
    (ax, ay), (bx, by) = edge.start, edge.end
    cx, cy = (ax + bx) / 2 + edge.rad * (by - ay), (ay + by) / 2 - edge.rad * (bx - ax)
    u = 1 - t
    return u * u * ax + 2 * u * t * cx + t * t * bx, u * u * ay + 2 * u * t * cy + t * t * by


def _label_lines(ops: Sequence[str], fontsize: float) -> list[tuple[float, float]]:
    return [_text_size(op, fontsize, LABEL_PAD) for op in ops]


def _block(ops: Sequence[str], fontsize: float) -> tuple[float, float]:
    """Size of the stacked labels of the ops on one edge (a line each, ``GAP`` points apart)."""
    lines = _label_lines(ops, fontsize)
    return max(w for w, _ in lines), sum(h for _, h in lines) + GAP / POINTS * (len(lines) - 1)


def _try_plan(cell: CellGenotype, fontsize: float, spread: float) -> CellDrawing:
    pos = layout(cell, spread)
    rank = ranks(cell)
    half = {n: tuple(s / 2 for s in _text_size(_node_text(n), fontsize + 2, NODE_PAD)) for n in pos}
    nodes = {n: _box(pos[n], (2 * half[n][0], 2 * half[n][1])) for n in pos}
    obstacles = list(nodes.values())
    pairs: dict[tuple[int, int], list[str]] = {}
    for target, edge in cell.edges():
        pairs.setdefault((edge.source, target), []).append(edge.op)
    arrows = [(s, t, tuple(ops)) for (s, t), ops in pairs.items()] + [(n, -1, ()) for n in cell.concat]

    edges = []
    for src, dst, ops in arrows:
        p0, p1 = pos[src], pos[dst]
        a, b = _clip(p0, p1, half[src]), _clip(p1, p0, half[dst])
        span = rank[dst] - rank[src]
        rad = 0.0
        if span > 1:
            # An edge over more than one layer bends away from the middle (between two nodes on the middle line,
            # alternately up and down), the more layers it skips the further, and further still until it misses
            # every node box on its way.
            mean = p0[1] + p1[1]
            side = (1 if span % 2 else -1) if abs(mean) < 1e-9 else (-1 if mean > 0 else 1)
            chord = math.hypot(b[0] - a[0], b[1] - a[1]) or 1.0
            others = [box for n, box in nodes.items() if n not in (src, dst)]
            height = (BULGE + BULGE_STEP * (span - 2)) * spread
            tries = [(side, height + k * BULGE_STEP) for k in range(8)] + [(-side, height + k * BULGE_STEP)
                                                                          for k in range(8)]
            for bend, h in tries:
                rad = bend * 2 * h / chord
                curve = EdgeDrawing(src, dst, ops, a, b, rad)
                if not any(_hits(_box(_along(curve, i / 24), (0.0, 0.0)), others) for i in range(1, 24)):
                    break
            else:
                rad = side * 2 * height / chord
        edges.append(EdgeDrawing(src, dst, ops, a, b, rad))

    placed, done = [], True
    labelled = sorted((e for e in edges if e.ops), key=lambda e: (rank[e.target] - rank[e.source], rank[e.source]))
    final = {}
    for edge in labelled:
        size = _block(edge.ops, fontsize)
        spots = [_along(edge, t) for t in LABEL_AT]
        free = next((p for p in spots if not _hits(_box(p, size), obstacles + placed)), None)
        if free is None:
            done, free = False, spots[0]
        placed.append(_box(free, size))
        final[(edge.source, edge.target)] = free
    edges = [replace(e, label_at=final.get((e.source, e.target))) if e.ops else e for e in edges]

    boxes = obstacles + placed
    margin = 0.15
    xlim = (min(b[0] for b in boxes) - margin, max(b[2] for b in boxes) + margin)
    arcs = [_along(e, 0.5)[1] for e in edges]
    ylim = (min([b[1] for b in boxes] + arcs) - margin, max([b[3] for b in boxes] + arcs) + margin)
    return CellDrawing(pos, edges, xlim, ylim, fontsize, done)


def plan_cell(cell: CellGenotype, fontsize: float = 8.0) -> CellDrawing:
    """The drawing of ``cell``: node places, arrows, and a place for every op label on its own arrow where it
    covers neither a node nor another label (the layout is spread until there is one)."""
    spread = 1.0
    for _ in range(SPREADS):
        drawing = _try_plan(cell, fontsize, spread)
        if drawing.placed:
            return drawing
        spread *= SPREAD
    return drawing


def draw_cell(ax: Any, cell: CellGenotype | CellDrawing, title: str | None = None, *, fontsize: float = 8.0) -> None:
    """Draw ``cell`` (or its :func:`plan_cell`) on the matplotlib axes ``ax``."""
    from matplotlib.patches import FancyArrowPatch

    drawing = cell if isinstance(cell, CellDrawing) else plan_cell(cell, fontsize)
    fontsize = drawing.fontsize
    has_inputs = {e.target for e in drawing.edges if e.ops}
    used = {e.source for e in drawing.edges}
    for edge in drawing.edges:
        families = {op_family(op) for op in edge.ops}
        colour = "#999999" if not edge.ops else OP_COLOURS[families.pop()] if len(families) == 1 else "#444444"
        ax.add_patch(FancyArrowPatch(edge.start, edge.end, connectionstyle=f"arc3,rad={edge.rad}", arrowstyle="-|>",
                                     mutation_scale=10, color=colour, lw=1.2 if edge.ops else 0.9, shrinkA=0,
                                     shrinkB=0, zorder=1, clip_on=False))
        if edge.label_at is None:
            continue
        lines = _label_lines(edge.ops, fontsize)
        top = edge.label_at[1] + _block(edge.ops, fontsize)[1] / 2
        for op, (_, height) in zip(edge.ops, lines, strict=True):
            ax.text(edge.label_at[0], top - height / 2, op, fontsize=fontsize, color=OP_COLOURS[op_family(op)],
                    ha="center", va="center", zorder=3,
                    bbox={"boxstyle": f"round,pad={LABEL_PAD}", "fc": "white", "ec": "none", "alpha": 0.9})
            top -= height + GAP / POINTS

    for node, (x, y) in drawing.pos.items():
        kind = _kind(node)
        live = kind != "node" or node in used or node in has_inputs
        box = {"boxstyle": f"round,pad={NODE_PAD}" if kind == "node" else f"square,pad={NODE_PAD}",
               "fc": COLOURS[kind], "ec": "black" if live else "#aaaaaa", "lw": 1.0,
               "linestyle": "-" if live else "--"}
        ax.text(x, y, _node_text(node), ha="center", va="center", fontsize=fontsize + 2, bbox=box, zorder=4,
                color="black" if live else "#888888")

    ax.set_xlim(*drawing.xlim)
    ax.set_ylim(*drawing.ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize + 2)


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
    drawings = [plan_cell(every[label]) for label in labels]
    columns = columns or (2 if len(labels) <= 8 else 3)
    columns = max(1, min(columns, len(labels)))
    rows = math.ceil(len(labels) / columns)
    # Axes placed by hand, one data unit to INCH inches exactly: the labels were placed for that scale.
    slot_w = max(d.size[0] for d in drawings) * INCH
    slot_h = max(d.size[1] for d in drawings) * INCH + TITLE
    top = SUPTITLE if title else 0.0
    fig_w, fig_h = slot_w * columns, slot_h * rows + top
    fig = plt.figure(figsize=(fig_w, fig_h))
    for k, (label, drawing) in enumerate(zip(labels, drawings, strict=True)):
        row, column = divmod(k, columns)
        w, h = drawing.size[0] * INCH, drawing.size[1] * INCH
        left = column * slot_w + (slot_w - w) / 2
        bottom = (rows - 1 - row) * slot_h + slot_h - TITLE - h  # top-aligned: the titles of a row line up
        ax = fig.add_axes((left / fig_w, bottom / fig_h, w / fig_w, h / fig_h))
        draw_cell(ax, drawing, titles[label])
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.1 / fig_h, va="top")
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
