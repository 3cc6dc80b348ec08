"""``benchmarks/RESULTS.md`` and its plots, written from the benchmark JSON files.

The results folder holds ``cost.json`` (and ``cost-<tag>.json`` for further cost runs, e.g. at
the size the methods' issues state their targets at) and ``quality.json``; :func:`write_results`
turns whatever is there into one Markdown page with PNG plots (matplotlib, Agg backend).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .cost import BASELINE, RATIO_FIELDS, cost_table, reference_table
from .quality import quality_table, verdict

PLOT_FIELDS = (("time_step_s", "step"), ("time_arch_s", "arch step"), ("time_weight_s", "weight step"),
               ("cpu_step_s", "step (CPU time)"),
               ("peak_rss_delta_mb", "peak RSS"), ("e2e_s", "end-to-end"))


def load_results(results_dir: Path) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any] | None]:
    """The cost runs (``(tag, result)``, untagged first) and the quality run found in ``results_dir``."""
    costs = []
    for path in sorted(results_dir.glob("cost*.json"), key=lambda p: (p.stem != "cost", p.stem)):
        tag = path.stem[len("cost-"):] if path.stem.startswith("cost-") else ""
        costs.append((tag, json.loads(path.read_text())))
    quality_path = results_dir / "quality.json"
    quality = json.loads(quality_path.read_text()) if quality_path.is_file() else None
    return costs, quality


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cost(result: dict[str, Any], path: Path) -> Path:
    """Horizontal grouped bars: every figure of every row as a ratio to NNI's DARTS (line at 1)."""
    plt = _pyplot()
    rows = [r for r in result["rows"] if not r.get("error")]
    fields = [(f, label) for f, label in PLOT_FIELDS if any(r["ratios"].get(f) is not None for r in rows)]
    height = 0.8 / max(1, len(fields))
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.55 * len(rows) * max(1, len(fields)) * 0.35 + 1))
    for k, (field, label) in enumerate(fields):
        ys = [i + (k - (len(fields) - 1) / 2) * height for i in range(len(rows))]
        xs = [r["ratios"].get(field) or 0.0 for r in rows]
        ax.barh(ys, xs, height=height, label=label)
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["id"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ratio to NNI's DARTS of the same run (dashed line = 1; lower is cheaper)")
    cfg = result["config"]
    ax.set_title(f"Search cost: {cfg['layers']} cells, {cfg['channels']} channels, {cfg['nodes']} nodes, "
                 f"batch {cfg['batch_size']}, {cfg['threads']} thread(s), {cfg['device']}", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_quality(result: dict[str, Any], path: Path) -> Path:
    """Test accuracy of every seed (dots), mean ± std (bars) per method; random architectures as a
    band (mean ± std) and their own column. A second panel shows skip connections per cell."""
    plt = _pyplot()
    entries = list(result["methods"].items()) + [("random", result["random"])]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    rs = result["random"]["summary"]
    if rs.get("acc_mean") is not None:
        lo, hi = 100 * (rs["acc_mean"] - (rs["acc_std"] or 0)), 100 * (rs["acc_mean"] + (rs["acc_std"] or 0))
        ax.axhspan(lo, hi, color="grey", alpha=0.2, label="random: mean ± std")
        ax.axhline(100 * rs["acc_mean"], color="grey", linestyle="--", linewidth=1)
    for i, (name, entry) in enumerate(entries):
        accs = [100 * r["test_acc"] for r in entry["runs"] if isinstance(r.get("test_acc"), (int, float))]
        ax.scatter([i] * len(accs), accs, s=18, color="C0" if name != "random" else "grey", zorder=3)
        s = entry["summary"]
        if s.get("acc_mean") is not None:
            ax.errorbar([i + 0.15], [100 * s["acc_mean"]], yerr=[100 * (s["acc_std"] or 0)], fmt="s",
                        color="C3" if name != "random" else "black", capsize=4, zorder=4)
        skips = [r["skip_per_cell"] for r in entry["runs"] if r.get("skip_per_cell") is not None]
        ax2.scatter([i] * len(skips), skips, s=18, color="C2" if name != "random" else "grey")
        if s.get("skip_per_cell_mean") is not None:
            ax2.plot([i - 0.25, i + 0.25], [s["skip_per_cell_mean"]] * 2, color="black")
    for a in (ax, ax2):
        a.set_xticks(range(len(entries)))
        a.set_xticklabels([n for n, _ in entries], rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    cfg = result["config"]
    ax.set_title(f"{cfg['dataset']}: search {cfg['search_epochs']} ep, retrain {cfg['retrain_epochs']} ep "
                 f"({cfg['seeds']} seeds, {cfg['random']} random)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax2.set_ylabel("skip connections per cell")
    ax2.set_title("skip connections in the found cells", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _load_text(env: dict[str, Any]) -> str:
    before, after = env.get("load_average_before"), env.get("load_average_after")
    fmt = lambda x: "n/a" if not x else " / ".join(f"{v:.2f}" for v in x)  # noqa: E731
    return f"{fmt(before)} before, {fmt(after)} after (1/5/15 min)"


def _machine(env: dict[str, Any], threads: int, device: str) -> list[str]:
    return [
        f"- Machine: {env.get('cpu')}, {env.get('cpu_count')} cores, {env.get('memory_gb')} GB RAM"
        + (f", GPU {env['cuda']}" if env.get("cuda") else "") + f"; {env.get('platform')}",
        f"- Software: Python {env.get('python')}, torch {env.get('torch')}, NNI {env.get('nni')}, "
        f"pytorch-lightning {env.get('pytorch_lightning')}; nni-decouple commit {env.get('git_commit')}",
        f"- Date: {env.get('date')}; threads per process: {threads}; device: {device}",
        f"- Load average: {_load_text(env)}",
    ]


def _noise_warning(env: dict[str, Any]) -> str | None:
    load = (env.get("load_average_before") or [0])[0]
    cores = env.get("cpu_count") or 1
    if load > 0.75 * cores:
        return (f"> **Noisy timings:** the 1-minute load average was {load:.2f} on {cores} cores when this run "
                f"started, so other processes competed for the CPU. Wall-clock times carry that noise; the CPU-time "
                f"columns (process CPU time per step) are much less affected and are the figures to compare.")
    return None


def _fast_lines(result: dict[str, Any]) -> list[str]:
    """What the fast-path and precision settings were, and the compute floor, for a cost section."""
    cfg = result["config"]
    if "fast" not in cfg:  # results written before the fast path existed
        return []
    lines = [f"Fast path (docs/performance.md): {'on' if cfg['fast'] else 'off'}, precision {cfg['precision']}, for "
             f"every row but `{BASELINE}` (NNI's `DARTS()` as a user runs it: default memory format, 32-bit)."]
    floors = result.get("floors") or []
    if floors:
        values = ", ".join(f"{f['floor_s']:.2f} s for the {len(f['ops'])}-op set" for f in floors)
        lines.append("Compute floor (every candidate op's own forward + backward alone on its input, summed over all "
                     "edges and cells, each in its faster memory format; a bilevel step runs two such passes): "
                     f"{values}; `step / floor` is each row's whole step over the floor of its own op set.")
    return [" ".join(lines), ""]


def cost_section(tag: str, result: dict[str, Any], plot: Path, md_dir: Path) -> list[str]:
    cfg = result["config"]
    title = "Search cost" + (f" ({tag})" if tag else "")
    lines = [f"## {title}", ""]
    lines += _machine(result["environment"], cfg["threads"], cfg["device"])
    lines += [f"- Command: `{result.get('command') or 'n/a'}` ({result.get('seconds', 0):.0f} s)", ""]
    warning = _noise_warning(result["environment"])
    if warning:
        lines += [warning, ""]
    override = f" (overridden: ops {cfg['ops']}, sharing {cfg['sharing']})" if cfg["ops"] or cfg["sharing"] else ""
    lines += [
        f"Space: {cfg['layers']} cells, {cfg['channels']} channels, {cfg['nodes']} nodes, each method's own op set and "
        f"sharing{override}; "
        f"{cfg['dataset']}, batch {cfg['batch_size']}; step times are medians of {cfg['steps']} calls after "
        f"{cfg['warmup']} warm-up calls; end-to-end is a {cfg['e2e_epochs']}-epoch search on "
        f"{cfg['e2e_train_limit']} images. Each figure is followed by its ratio to NNI's `DARTS()` ({BASELINE}) "
        f"measured in the same run.", "",
        *_fast_lines(result),
        cost_table(result, markdown=True), "",
    ]
    ref = reference_table(result, markdown=True)
    if ref:
        lines += ["Variants against their own reference rows, and the targets the methods declare:", "", ref, ""]
    errors = [r for r in result["rows"] if r.get("error")]
    partial = [r for r in result["rows"] if not r.get("error") and r.get("part_errors")]
    if errors or partial:
        lines += ["Failures:", ""]
        lines += [f"- `{r['id']}`: {str(r['error']).splitlines()[0]}" for r in errors]
        lines += [f"- `{r['id']}`: part(s) failed: {r['part_errors']}" for r in partial]
        lines += [""]
    lines += [f"![cost ratios]({plot.relative_to(md_dir) if plot.is_relative_to(md_dir) else plot})", ""]
    spaces = sorted({(r["space"]["num_ops"], r["space"]["sharing"]) for r in result["rows"] if r.get("space")})
    if len(spaces) > 1:
        lines += ["Spaces differ where the methods define them differently (op count, sharing): "
                  + "; ".join(f"`{r['id']}` {r['space']['num_ops']} ops, sharing {r['space']['sharing']}"
                              for r in result["rows"] if r.get("space")) + ".", ""]
    return lines


def quality_section(result: dict[str, Any], plot: Path, md_dir: Path) -> list[str]:
    cfg = result["config"]
    depth = cfg["retrain_layers"] or cfg["layers"]
    for entry in result["methods"].values():  # re-judged here, so that the wording follows the code
        entry["summary"]["verdict"] = verdict(entry["summary"], result["random"]["summary"])
    test_images = f"{result['test_images']:,} held-out" if result.get("test_images") else "held-out"
    lines = [f"## Search quality on {cfg['dataset']}", ""]
    lines += _machine(result["environment"], cfg["threads"], "cpu")
    lines += [f"- Command: `{result.get('command') or 'n/a'}` ({result.get('seconds', 0):.0f} s)", ""]
    lines += [
        f"Each method searches ({cfg['layers']} cells, {cfg['channels']} channels, {cfg['nodes']} nodes, its own op "
        f"set and sharing, batch {cfg['batch_size']}, {cfg['search_epochs']} epoch(s) on "
        f"{cfg['search_train_limit'] or 'all'} training images, split in half for weights and architecture) from "
        f"{cfg['seeds']} seed(s); every found genotype is retrained from scratch ({depth} cells, "
        f"{cfg['retrain_channels']} channels, {cfg['retrain_epochs']} epoch(s), batch {cfg['retrain_batch_size']}, "
        f"SGD lr {cfg['retrain_lr']} cosine, on {cfg['retrain_train_limit'] or 'all'} training images) and "
        f"tested on the {test_images} test images. The baseline is {cfg['random']} uniformly random cells of "
        f"the DARTS space ({cfg['random_ops']}, two inputs per node) trained the same way. Per-layer genotypes "
        f"(global search) keep their search depth.", "",
        quality_table(result, markdown=True), "",
    ]
    rs = result["random"]["summary"]
    losers = [n for n, e in result["methods"].items() if not str(e["summary"].get("verdict", "")).startswith("beats")]
    winners = [n for n in result["methods"] if n not in losers]
    if rs.get("acc_mean") is not None:
        if losers:
            lines += [f"**Not better than random on this small task:** {', '.join(losers)}. With this budget, "
                      f"their searched cells do not test clearly better than random cells of the DARTS space "
                      f"(random: {100 * rs['acc_mean']:.2f}% ± {100 * (rs['acc_std'] or 0):.2f})."
                      + (f" Better than random: {', '.join(winners)}." if winners else ""), ""]
        else:
            lines += [f"Every method beats the random baseline here "
                      f"({100 * rs['acc_mean']:.2f}% ± {100 * (rs['acc_std'] or 0):.2f}).", ""]
    failed = [(n, r) for n, e in result["methods"].items() for r in e["runs"] if r.get("error")]
    failed += [("random", r) for r in result["random"]["runs"] if r.get("error")]
    if failed:
        lines += ["Failed runs:", ""]
        lines += [f"- {n} seed {r['seed']}: {str(r['error']).splitlines()[0]}" for n, r in failed] + [""]
    lines += [f"![quality]({plot.relative_to(md_dir) if plot.is_relative_to(md_dir) else plot})", ""]
    lines += ["Skip connections of the found cells (per cell, every seed):", ""]
    for name, entry in result["methods"].items():
        per_seed = [f"seed {r['seed']}: {r['skip_connections']}" for r in entry["runs"] if r.get("skip_connections")]
        lines.append(f"- {name}: " + ("; ".join(per_seed) or "-"))
    lines.append("")
    return lines


HEADER = """# Benchmark results

Measured by `nni-decouple bench` (code: `nni_decouple/bench/`;
how it works and how a method plugs in: [README.md](README.md)). Every cost figure is given next to its
ratio to NNI's own `DARTS()` measured in the same run, on the same space size, batch, data and threads.
Each section below gives the exact command that produced it. Everything on this page is regenerated by

    {command}

and the page alone (from the JSON files in `results/`) by `nni-decouple bench --report-only`.
"""


def write_results(results_dir: Path, md_path: Path, command: str | None = None) -> Path:
    """Write ``md_path`` and the PNG plots (into ``results_dir``) from the JSON files found there."""
    results_dir, md_path = Path(results_dir), Path(md_path)
    md_dir = md_path.parent.resolve()
    costs, quality = load_results(results_dir)
    lines = [HEADER.format(command=command or "python benchmarks/run.py")]
    if not costs and quality is None:
        lines += ["No results yet: run the command above.", ""]
    for tag, result in costs:
        plot = plot_cost(result, results_dir.resolve() / (f"cost_ratios-{tag}.png" if tag else "cost_ratios.png"))
        lines += cost_section(tag, result, plot, md_dir)
    if quality is not None:
        plot = plot_quality(quality, results_dir.resolve() / "quality.png")
        lines += quality_section(quality, plot, md_dir)
    lines += ["## Fields", "",
              "- `step`: one whole `training_step` of the method's Lightning module (architecture and weight "
              "steps, and whatever else the schedule does in that step); `arch`, `weight`: each alone.",
              "- `peak RSS +`: peak resident memory while building the supernet and running the whole steps, "
              "minus the memory before the supernet was built (interpreter, libraries, data); the absolute peak "
              "is in the JSON (`peak_rss_mb`). Every row runs in a fresh process.",
              "- `arch params`: elements of the architecture parameters; `end-to-end`: a short search from start "
              "to exported architecture, each method with its own data handling and schedule.",
              f"- Ratios in the JSON: {', '.join(RATIO_FIELDS)}.", ""]
    return atomic_write_text(md_path, "\n".join(lines))
