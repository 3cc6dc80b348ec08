"""One self-contained HTML page about a search run: what it found and how it got there.

:func:`build_report` reads a run directory written by :func:`~nni_decouple.runner.experiment.run_search`
(``config.json``, ``genotype.json``, ``arch_probs.json``, ``logs/metrics.csv`` and the per-epoch
``arch_history.jsonl`` of :mod:`.recorder`) and returns one HTML page whose plots are embedded PNGs
(matplotlib), so it can be mailed or attached as it is. Sections, each a ``<section id=...>``:
``summary``, ``curves`` (loss and accuracy), ``weights`` (op weights, topology weights and every raw
architecture parameter over the search, per cell), ``schedule`` (temperature and stage timeline),
``skip`` (skip connections of the derived cells), ``cells`` (diagrams of the derived cells),
``size`` (parameters and MACs of the derived network) and ``health`` (the search-health checks of
:mod:`~nni_decouple.runner.health`: a verdict per check, measurements per cell). A section whose
data the run lacks says so instead of disappearing, so every report has the same outline. Epochs on every x axis count
*completed* epochs (0: at initialisation).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models.genotype import NUM_INPUTS, Genotype, load_genotype
from ..runner.health import CHECKS, DOCS
from ..runner.recorder import read_history
from .diagrams import cell_figure, op_family, pyplot

SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("curves", "Loss and accuracy"),
    ("weights", "Architecture weights"),
    ("schedule", "Temperature and stage"),
    ("skip", "Skip connections"),
    ("cells", "Derived cells"),
    ("size", "Network size"),
    ("health", "Search health"),
)
#: Cells whose weight evolution is plotted in full; more (a deep per-layer search) are summarised.
MAX_EVOLUTION_CELLS = 12
DPI = 80


# ---------------------------------------------------------------------- reading the run
def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """Rows of ``logs/metrics.csv`` without NNI's ``prob/*`` columns, as floats (empty cells dropped)."""
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            parsed = {}
            for key, value in row.items():
                if key and not key.startswith("prob/") and value not in ("", None):
                    try:
                        parsed[key] = float(value)
                    except ValueError:
                        continue
            rows.append(parsed)
    return rows


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def node_name(node: int) -> str:
    """Plain-text node names of the diagrams: ``k-2``, ``k-1``, then ``0, 1, ...``."""
    return {0: "k-2", 1: "k-1"}.get(node, str(node - NUM_INPUTS))


def split_probs(probs: dict[str, Any]) -> tuple[dict[str, dict[tuple[int, int], dict[str, float]]],
                                                 dict[str, dict[int, dict[int, float]]]]:
    """``export_probs`` -> op weights ``{label: {(source, target): {op: w}}}`` and topology weights
    ``{label: {target: {source: w}}}``."""
    ops: dict[str, dict[tuple[int, int], dict[str, float]]] = {}
    topology: dict[str, dict[int, dict[int, float]]] = {}
    for key, dist in probs.items():
        label, _, rest = key.rpartition("/")
        if m := re.fullmatch(r"(\d+)_(\d+)", rest):
            ops.setdefault(label, {})[(int(m[2]), int(m[1]))] = dict(dist)
        elif m := re.fullmatch(r"topology_(\d+)", rest):
            topology.setdefault(label, {})[int(m[1])] = {int(s): float(w) for s, w in dist.items()}
    return ops, topology


def parameter_kind(name: str) -> str:
    """What a raw parameter is, from its recorded name: ``alpha``, ``topology beta``, ``gamma``..."""
    _, _, rest = name.partition("/")
    parts = [p for p in rest.split(".") if not re.fullmatch(r"\d+(_\d+)?", p)]
    kind = parts[-1] if parts else rest
    return f"topology {kind}" if parts and parts[0] == "topology" else kind


# ---------------------------------------------------------------------- figures
def _png(fig: Any) -> str:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:  # every x axis of the report counts epochs or steps: whole numbers only
        if ax.get_label() != "<colorbar>":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig: Any, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _op_colour(ops: Sequence[str]) -> dict[str, Any]:
    """A distinct colour per op, in the hue of its family where possible."""
    plt = pyplot()
    cmap = plt.get_cmap("tab10")
    return {op: cmap(i % 10) for i, op in enumerate(ops)}


def plot_curves(metrics: list[dict[str, float]]) -> Any | None:
    plt = pyplot()
    step = [(r["step"], r["train_loss_step"]) for r in metrics if "train_loss_step" in r and "step" in r]
    epoch_keys = sorted({k for r in metrics for k in r if k.endswith(("_loss_epoch", "_acc")) or k == "val_loss"})
    if not step and not epoch_keys:
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.4))
    if step:
        ax_loss.plot(*zip(*step, strict=True), color="#bbbbbb", lw=0.8, label="train loss (step)")
    for key in epoch_keys:
        points = [(r["epoch"] + 1, r[key]) for r in metrics if key in r and "epoch" in r]
        if not points:
            continue
        ax = ax_acc if key.endswith("_acc") else ax_loss
        if step and ax is ax_loss:  # put epoch ends on the step axis
            last_step = {int(r["epoch"]): r["step"] for r in metrics if "step" in r and "epoch" in r}
            points = [(last_step.get(int(e) - 1, e), v) for e, v in points]
        ax.plot(*zip(*points, strict=True), marker="o", label=key.replace("_", " "))
    ax_loss.set_xlabel("step" if step else "epochs completed")
    ax_loss.set_title("loss")
    ax_acc.set_xlabel("epochs completed")
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_op_heatmap(label: str, final: dict[tuple[int, int], dict[str, float]]) -> Any:
    plt = pyplot()
    edges = sorted(final, key=lambda e: (e[1], e[0]))
    ops = list(next(iter(final.values())))
    values = [[final[e].get(op, math.nan) for op in ops] for e in edges]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(ops), 0.9 + 0.3 * len(edges)))
    im = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(ops)), ops, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(edges)), [f"{node_name(s)} → {node_name(t)}" for s, t in edges], fontsize=8)
    if len(edges) * len(ops) <= 160:
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                            color="white" if v < 0.6 * max(max(r) for r in values) else "black")
    ax.set_title(f"{label}: final op weights", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def plot_op_evolution(label: str, epochs: list[int], series: list[dict[tuple[int, int], dict[str, float]]]) -> Any:
    """Small multiples, one per edge: every op's weight over the epochs."""
    plt = pyplot()
    edges = sorted({e for s in series for e in s}, key=lambda e: (e[1], e[0]))
    ops = list(dict.fromkeys(op for s in series for d in s.values() for op in d))
    colours = _op_colour(ops)
    columns = min(5, len(edges))
    rows = math.ceil(len(edges) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 1.8 * rows + 0.6), squeeze=False, sharex=True)
    for ax in axes.flat[len(edges):]:
        ax.axis("off")
    for ax, edge in zip(axes.flat, edges, strict=False):
        for op in ops:
            ys = [s.get(edge, {}).get(op, math.nan) for s in series]
            ax.plot(epochs, ys, color=colours[op], lw=1.2, ls="--" if op_family(op) == "skip" else "-")
        ax.set_title(f"{node_name(edge[0])} → {node_name(edge[1])}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colours[op], ls="--" if op_family(op) == "skip" else "-") for op in ops]
    fig.legend(handles, ops, loc="lower center", ncol=min(len(ops), 8), fontsize=7, frameon=False)
    fig.suptitle(f"{label}: op weights per edge over the search (x: epochs completed)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return fig


def plot_topology_evolution(label: str, epochs: list[int], series: list[dict[int, dict[int, float]]]) -> Any:
    plt = pyplot()
    nodes = sorted({n for s in series for n in s})
    fig, axes = plt.subplots(1, len(nodes), figsize=(2.6 * len(nodes), 2.9), squeeze=False)
    for ax, node in zip(axes.flat, nodes, strict=True):
        sources = sorted({src for s in series for src in s.get(node, {})})
        for src in sources:
            ax.plot(epochs, [s.get(node, {}).get(src, math.nan) for s in series], marker=".",
                    label=f"from {node_name(src)}")
        ax.set_title(f"into node {node_name(node)}", fontsize=8)
        values = [w for s in series for w in s.get(node, {}).values()]
        if values and 0.0 <= min(values) and max(values) <= 1.0:
            ax.set_ylim(-0.03, 1.03)  # a fixed scale, not matplotlib's offset notation for flat lines
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)  # below
        ax.grid(alpha=0.3)
    fig.suptitle(f"{label}: topology (input-edge) weights over the search", fontsize=10)
    fig.tight_layout()
    return fig


def _flat(value: Any) -> list[float]:
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [float(value)]


def plot_parameters(kind: str, names: list[str], epochs: list[int], history: list[dict[str, Any]]) -> Any:
    """One heatmap per parameter: its entries (rows, flattened) over the epochs (columns)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 2.4 * rows + 0.5), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):
        cols = [_flat(r["parameters"][name]) if name in r.get("parameters", {}) else None for r in history]
        size = max(len(c) for c in cols if c is not None)
        ax.set_title(textwrap.fill(name, 34), fontsize=7)  # long names wrap instead of running into neighbours
        ax.set_xlabel("epochs completed", fontsize=7)
        ax.tick_params(labelsize=6)
        if size == 1:  # one entry (a scalar parameter): a curve says more than a one-row heatmap
            ax.plot(epochs, [c[0] if c else math.nan for c in cols], marker="o", ms=3)
            ax.set_ylabel("value", fontsize=7)
            ax.grid(alpha=0.3)
            continue
        matrix = [[(c[i] if c is not None and i < len(c) else math.nan) for c in cols] for i in range(size)]
        im = ax.imshow(matrix, aspect="auto", cmap="coolwarm", interpolation="nearest",
                       extent=(epochs[0] - 0.5, epochs[-1] + 0.5, size - 0.5, -0.5))
        ax.set_ylabel("entry", fontsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # entries are counted
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(f"raw {kind} over the search", fontsize=10)
    fig.tight_layout()
    return fig


def plot_schedule(epochs: list[int], history: list[dict[str, Any]]) -> Any | None:
    plt = pyplot()
    keys = sorted({k for r in history for k in r.get("temperatures", {})})
    stages = [(r["epoch"], r.get("stage")) for r in history if r.get("stage")]
    if not keys and not stages:
        return None
    fig, ax = plt.subplots(figsize=(8, 3))
    palette = plt.get_cmap("Pastel1")
    names = list(dict.fromkeys(s for _, s in stages))
    for epoch, stage in stages:  # the record of epoch e holds the stage epoch e ran in: span [e-1, e]
        ax.axvspan(epoch - 1, epoch, color=palette(names.index(stage) % 9), alpha=0.8, lw=0)
    for key in keys:
        points = [(r["epoch"], r["temperatures"][key]) for r in history if key in r.get("temperatures", {})]
        ax.plot(*zip(*points, strict=True), marker="o", label=key)
    if keys and all(v > 0 for r in history for v in r.get("temperatures", {}).values()):
        ax.set_yscale("log")
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette(i % 9)) for i in range(len(names))]
    # legends beside the plot, where they cover no point
    legend = (ax.legend(handles, names, loc="lower left", bbox_to_anchor=(1.01, 0), fontsize=7, title="stage",
                        title_fontsize=7) if names else None)
    if keys:
        if legend is not None:
            ax.add_artist(legend)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    ax.set_xlabel("epochs completed")
    ax.set_ylabel("temperature")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_skips(epochs: list[int], history: list[dict[str, Any]]) -> Any:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    labels = list(dict.fromkeys(k for r in history for k in r.get("skip_connections", {})))
    fig, ax = plt.subplots(figsize=(7, 3))
    if len(labels) <= 8:
        for label in labels:
            ax.plot(epochs, [r["skip_connections"].get(label, math.nan) for r in history], marker="o", label=label)
    totals = [sum(r["skip_connections"].values()) for r in history]
    ax.plot(epochs, totals, color="black", ls="--", label="all cells")
    ax.set_xlabel("epochs completed")
    ax.set_ylabel("skip connections in the derived cell")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the plot: it covers no point
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- sections
def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _space_text(config: dict[str, Any], space: dict[str, Any]) -> str:
    """The space that ran: the op set and sharing the run recorded (config.json holds None for "the method's
    default"), else what config.json says."""
    ops = space.get("ops") or config.get("ops")
    ops_text = f"{len(ops)} ops ({', '.join(ops)})" if isinstance(ops, list) else f"ops {ops or 'the method default'}"
    sharing = space.get("sharing") or config.get("sharing")
    cells = {"type": " (one cell per type)", "layer": " (one cell per layer)"}.get(sharing, "")
    return (f"{config.get('layers', '?')} cells{cells}, {config.get('channels', '?')} channels, "
            f"{config.get('nodes', '?')} nodes, {ops_text}")


def _stage_runs(history: list[dict[str, Any]]) -> list[list[Any]]:
    """``[stage, first, last]`` (epochs completed) of every stretch of equal stage in the history."""
    rows: list[list[Any]] = []
    for r in history[1:]:
        if rows and rows[-1][0] == r.get("stage"):
            rows[-1][2] = r["epoch"]
        else:
            rows.append([r.get("stage"), r["epoch"], r["epoch"]])
    return rows


def _options_text(options: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """``key value`` pairs; an unset stage plan shows the stages that ran."""
    parts = []
    for key, value in sorted(options.items()):
        if key == "stage_epochs" and value is None:
            runs = [(s, b - a + 1) for s, a, b in _stage_runs(history) if s]
            value = ", ".join(f"{s} {n}" for s, n in runs) + " (scaled from the published plan)" if runs else None
        if value is None:
            continue
        parts.append(f"{key} {', '.join(map(str, value)) if isinstance(value, (list, tuple)) else value}")
    return "; ".join(parts)


def summary_section(run_dir: Path, config: dict[str, Any], probs: dict[str, Any], genotype: Genotype | None,
                    history: list[dict[str, Any]]) -> str:
    rows = [("run directory", str(run_dir)), ("method", config.get("method", probs.get("method", "?"))),
            ("dataset", config.get("dataset", "?")),
            ("epochs", probs.get("epochs", config.get("epochs", "?"))),
            ("search time", f"{probs['search_seconds']} s" if "search_seconds" in probs else "?"),
            ("search space", _space_text(config, probs.get("space") or {})),
            ("epochs recorded", f"{len(history)} snapshots in arch_history.jsonl" if history else "none")]
    if config.get("method_options"):
        rows.append(("method options", _options_text(config["method_options"], history)))
    body = _table(rows)
    if genotype is not None:
        body += f"<p>Derived genotype:</p><pre>{html.escape(genotype.to_text())}</pre>"
    return body


def curves_section(metrics: list[dict[str, float]]) -> str:
    fig = plot_curves(metrics)
    if fig is None:
        return _note("logs/metrics.csv has no loss or accuracy (the run logged none).")
    return (_img(fig, "loss and accuracy") + _note(
        "Searches log the loss of both bilevel halves under train_loss (architecture steps on the validation half, "
        "weight steps on the training half); accuracy is the epoch mean."))


def weights_section(history: list[dict[str, Any]], probs: dict[str, Any]) -> str:
    if not history:
        if not probs.get("probs"):
            return _note("This run has neither arch_history.jsonl nor arch_probs.json: nothing to plot.")
        history = [{"epoch": probs.get("epochs", 1), "probs": probs["probs"], "parameters": {}}]
        parts = [_note("This run predates arch_history.jsonl: only the final weights are shown.")]
    else:
        parts = []
    epochs = [r["epoch"] for r in history]
    split = [split_probs(r.get("probs", {})) for r in history]
    labels = list(dict.fromkeys(label for ops, topo in split for label in (*ops, *topo)))
    parts.append('<h3 id="weights-ops">Op weights (alpha, as the method normalises it)</h3>')
    evolved = labels if len(labels) <= MAX_EVOLUTION_CELLS else labels[:MAX_EVOLUTION_CELLS]
    for label in labels:
        finals = [ops[label] for ops, _ in split if label in ops]
        if not finals:
            continue
        parts.append(f'<div class="cell-weights"><h4>{html.escape(label)}</h4>')
        parts.append(_img(plot_op_heatmap(label, finals[-1]), f"{label} final op weights"))
        if label in evolved and len(history) > 1:
            parts.append(_img(plot_op_evolution(label, epochs, [ops.get(label, {}) for ops, _ in split]),
                              f"{label} op weights over the search"))
        parts.append("</div>")
    if len(evolved) < len(labels):
        parts.append(_note(f"Evolution plotted for the first {len(evolved)} of {len(labels)} cells."))
    parts.append('<h3 id="weights-topology">Topology weights (beta)</h3>')
    topo_labels = [label for label in labels if any(label in topo for _, topo in split)]
    if not topo_labels:
        parts.append(_note("This method has no topology weights: a node's inputs are chosen from the op weights."))
    for label in topo_labels:
        parts.append(_img(plot_topology_evolution(label, epochs, [topo.get(label, {}) for _, topo in split]),
                          f"{label} topology weights"))
    if topo_labels and any(not any(label in topo for label in topo_labels) for _, topo in split):
        parts.append(_note("Gaps: epochs in which the topology was switched off (e.g. DOTS' operation stages)."))
    parts.append('<h3 id="weights-raw">Raw architecture parameters</h3>')
    names = list(dict.fromkeys(n for r in history for n in r.get("parameters", {})))
    if not names:
        parts.append(_note("No raw architecture parameters were recorded."))
    kinds: dict[str, list[str]] = {}
    for name in names:
        kinds.setdefault(parameter_kind(name), []).append(name)
    rows = [(kind, len(members), ", ".join(members[:4]) + (" ..." if len(members) > 4 else ""))
            for kind, members in kinds.items()]
    if rows:
        parts.append(_table(rows, ("parameter", "tensors", "names (cell label / path)")))
    for kind, members in kinds.items():
        shown = members[:MAX_EVOLUTION_CELLS]
        parts.append(_img(plot_parameters(kind, shown, epochs, history), f"raw {kind}"))
        if len(shown) < len(members):
            parts.append(_note(f"{kind}: the first {len(shown)} of {len(members)} tensors are shown."))
    return "".join(parts)


def schedule_section(history: list[dict[str, Any]]) -> str:
    epochs = [r["epoch"] for r in history]
    fig = plot_schedule(epochs, history) if history else None
    if fig is None:
        return _note("This method has no temperature or stage schedule.")
    table = _table([(s or "-", b - a + 1, f"{a}" if a == b else f"{a}-{b}") for s, a, b in _stage_runs(history)],
                   ("stage", "epochs", "which epochs"))
    return _img(fig, "temperature and stage timeline") + table


def skip_section(history: list[dict[str, Any]], probs: dict[str, Any]) -> str:
    if history:
        return _img(plot_skips([r["epoch"] for r in history], history), "skip connections over the search")
    counts = probs.get("skip_connections")
    if counts:
        return _table(sorted(counts.items()), ("cell", "skip connections (final)"))
    return _note("No skip-connection counts were recorded.")


def cells_section(genotype: Genotype | None) -> str:
    if genotype is None:
        return _note("The run has no genotype.json (the search did not finish).")
    return _img(cell_figure(genotype), "derived cells")


def size_section(genotype: Genotype | None, sizes: Sequence[dict[str, Any]] | str | None) -> str:
    """``sizes``: rows with ``network``, ``channels``, ``layers``, ``in_chans``, ``input_size``,
    ``num_classes``, ``params``, ``macs`` (``nni-decouple report`` measures them with :mod:`.cards`),
    or the reason they could not be measured."""
    if genotype is None:
        return _note("No genotype: no network to measure.")
    if sizes is None:
        return _note("Not measured (build the report with `nni-decouple report` to count params and MACs).")
    if isinstance(sizes, str):
        return _note(f"The derived network could not be built: {sizes}")
    from ..models.cards import MAC_COUNTER

    rows = sizes

    table = _table([(r["network"], r["channels"], r["layers"], f"{r['in_chans']}x{r['input_size']}x{r['input_size']}",
                     r["num_classes"], f"{r['params'] / 1e6:.3f}", f"{r['macs'] / 1e6:.1f}") for r in rows],
                   ("network", "channels", "cells", "input", "classes", "params (M)", "MACs (M)"))
    return table + _note(f"Parameters without the auxiliary head; MACs by {MAC_COUNTER}, one image, eval mode.")


# ---------------------------------------------------------------------- page
STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1.5em 3em; color: #222; }
h1 { margin-top: 1em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
nav#toc { background: #f6f6f6; padding: .5em 1em; border-radius: 4px; }
nav#toc a { margin-right: 1.2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: 14px; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
img { max-width: 100%; display: block; margin: .6em 0; }
pre { white-space: pre-wrap; word-break: break-all; background: #f6f6f6; padding: .6em; font-size: 12px; }
.note { color: #666; font-size: 13px; }
#js-errors:not(:empty) { background: #fdd; padding: .5em; }
"""
# Builds the table of contents from the section headings and reports any script error on the
# page itself, so a headless browser's DOM dump shows whether the page rendered cleanly.
SCRIPT = """
window.addEventListener('error', function (e) {
  document.getElementById('js-errors').textContent += 'error: ' + e.message + '\\n';
});
document.addEventListener('DOMContentLoaded', function () {
  var toc = document.getElementById('toc');
  document.querySelectorAll('section > h2').forEach(function (h) {
    var a = document.createElement('a');
    a.href = '#' + h.parentElement.id;
    a.textContent = h.textContent;
    toc.appendChild(a);
  });
  document.body.setAttribute('data-rendered', String(document.images.length));
});
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def health_section(history: list[dict[str, Any]]) -> str:
    """A verdict per health check at the last epoch, the epochs each check warned in, and the last
    epoch's measurements per cell (docs/health.md)."""
    recorded = [r for r in history if r.get("health")]
    if not recorded:
        return _note("This run recorded no search health (arch_history.jsonl without 'health': a run of an "
                     "older version, or none).")
    last = recorded[-1]["health"]
    warned: dict[str, list[int]] = {}
    for record in recorded:
        for check, verdict in record["health"].get("checks", {}).items():
            if verdict.get("status") == "warn":
                warned.setdefault(check, []).append(int(record["epoch"]))
    rows = []
    for check in CHECKS:
        verdict = last.get("checks", {}).get(check, {"status": "n/a", "message": "not measured"})
        epochs = warned.get(check, [])
        rows.append((check, verdict["status"], verdict.get("message", ""),
                     ", ".join(map(str, epochs)) if epochs else "never"))
    body = _table(rows, ("check", f"verdict (epoch {recorded[-1]['epoch']})", "why", "warned after epochs"))
    cells = last.get("cells", {})
    if cells:
        cell_rows = []
        for label in sorted(cells):
            c = cells[label]
            g = c.get("gradient") or {}
            cell_rows.append((label, _fmt(c.get("movement")), _fmt(c.get("noise")), _fmt(c.get("op_entropy")),
                              _fmt(c.get("topology_entropy")),
                              _fmt(g.get("max_ratio")) if g else "-", _fmt(g.get("min_cosine")) if g else "-",
                              f"{g['opposing']}/{g['steps']}" if g.get("steps") else "-",
                              f"{c['parameter_free']}/{c['edges']}" if c.get("edges") else "-",
                              _fmt(c.get("skip")), _fmt(c.get("changed"))))
        body += _table(cell_rows, ("cell", "movement", "initial noise", "op entropy", "topology entropy",
                                   "grad / CE grad (max)", "cosine (min)", "opposing steps", "parameter-free",
                                   "skip", "edges changed"))
    thresholds = last.get("thresholds", {})
    if thresholds:
        body += _note("Thresholds: " + ", ".join(f"{k} = {v}" for k, v in thresholds.items()) +
                      f". What each check means and why these defaults: {DOCS} in the repository.")
    return body


def build_report(run_dir: str | Path, sizes: Sequence[dict[str, Any]] | str | None = None) -> str:
    """The HTML page of the run in ``run_dir`` (``sizes``: see :func:`size_section`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{str(run_dir)!r} is not a run directory: pass the --out of a search")
    config = _read_json(run_dir / "config.json")
    probs = _read_json(run_dir / "arch_probs.json")
    if not config and not probs and not (run_dir / "genotype.json").is_file():
        raise ConfigError(f"{str(run_dir)!r} has no config.json, arch_probs.json or genotype.json: is it the --out of "
                          f"`nni-decouple search`?")
    genotype = load_genotype(run_dir / "genotype.json") if (run_dir / "genotype.json").is_file() else None
    history = read_history(run_dir)
    metrics = read_metrics(run_dir)
    bodies = {
        "summary": summary_section(run_dir, config, probs, genotype, history),
        "curves": curves_section(metrics),
        "weights": weights_section(history, probs),
        "schedule": schedule_section(history),
        "skip": skip_section(history, probs),
        "cells": cells_section(genotype),
        "size": size_section(genotype, sizes),
        "health": health_section(history),
    }
    title = f"nni-decouple search report: {config.get('method', probs.get('method', 'run'))} on " \
            f"{config.get('dataset', '?')} ({run_dir.name})"
    sections = "\n".join(f'<section id="{sid}"><h2>{html.escape(heading)}</h2>{bodies[sid]}</section>'
                         for sid, heading in SECTIONS)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head>\n<body><h1>{html.escape(title)}</h1>"
            f'<nav id="toc"></nav><div id="js-errors"></div>\n{sections}\n</body></html>\n')


def write_report(run_dir: str | Path, out: str | Path | None = None,
                 sizes: Sequence[dict[str, Any]] | str | None = None) -> Path:
    """Write :func:`build_report` to ``out`` (default ``RUN_DIR/report.html``) atomically."""
    from ..io import atomic_write_text

    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    return atomic_write_text(path, build_report(run_dir, sizes))
