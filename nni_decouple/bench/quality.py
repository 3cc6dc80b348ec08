"""Search-quality benchmark: does a method find better cells than random ones, on MNIST-5k?

For each method (its CLI defaults, as :mod:`nni_decouple.bench.cost` measures it): search with a small
fixed budget from several seeds, retrain every found genotype from scratch with one fixed recipe,
and report the test accuracy (mean and spread over seeds) next to ``K`` random architectures of
the DARTS space (the standard random-search baseline of the NAS literature) trained the same way.
It also reports the skip connections of the found cells, the quantity DARTS is known to inflate.

Retraining uses :func:`nni_decouple.runner.retrain.retrain` (DARTS' evaluation recipe) with a short fixed
budget: no cutout (MNIST digits are 28x28; a 16-pixel hole removes most of one), no drop path and
no auxiliary head (a few epochs are too short for either to pay off); all configurable.

Each job (one search and its retraining, or one random architecture) runs in its own subprocess
when isolation is on, so that a method that fails does not stop the others.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..options import finite, need, need_seed, need_whole
from .harness import (
    BASELINE,
    BenchVariant,
    build_strategy,
    cached_datasets,
    discover,
    environment,
    load_average,
    prepare_row,
    register_job,
    render_table,
    run_job,
    set_threads,
)

#: Fields of every run (search or random) and of every summary; the test checks them.
RUN_FIELDS = ("seed", "error", "genotype", "skip_connections", "skip_total", "skip_per_cell", "search_s",
              "test_acc", "retrain_s", "params")
SUMMARY_FIELDS = ("n", "n_failed", "acc_mean", "acc_std", "acc_min", "acc_max", "skip_per_cell_mean",
                  "search_s_mean", "verdict")


@dataclass
class QualityConfig:
    """Options of the quality benchmark (``nni-decouple bench --quality``)."""

    layers: int = 5
    channels: int = 8
    nodes: int = 4
    ops: str | None = None  # None: each method's default op set
    sharing: str | None = None
    batch_size: int = 16
    search_epochs: int = 2  # DOTS needs at least 2: one of op search, one of topology search
    search_train_limit: int | None = 256
    retrain_layers: int | None = None  # None: the search depth (per-layer genotypes fix their depth)
    retrain_channels: int = 16
    retrain_epochs: int = 1
    retrain_batch_size: int = 64
    retrain_lr: float = 0.025
    retrain_train_limit: int | None = None  # None: all 4,000 MNIST-5k training images
    retrain_cutout: int = 0
    retrain_drop_path: float = 0.0
    retrain_auxiliary_weight: float = 0.0
    seeds: int = 3
    random: int = 6
    random_ops: str = "darts_no_none"
    seed: int = 0
    threads: int = 1
    dataset: str = "mnist5k"
    isolate: bool = True
    timeout: float = 3600.0
    device: str = "cpu"  # where the searches run (retraining stays on the CPU)

    def validate(self) -> QualityConfig:
        def flag(name: str) -> str:  # the supernet's options have a q- prefix (the cost benchmark has its own)
            return f"q-{name}".replace("_", "-") if name in ("layers", "channels", "nodes", "batch_size") else \
                name.replace("_", "-")

        for name in ("layers", "channels", "nodes", "batch_size", "search_epochs", "retrain_channels",
                     "retrain_epochs", "retrain_batch_size", "seeds", "threads"):
            need_whole(flag(name), getattr(self, name), 1)
        for name in ("search_train_limit", "retrain_layers", "retrain_train_limit"):
            if getattr(self, name) is not None:
                need_whole(flag(name), getattr(self, name), 1)
        need_whole("random", self.random, 0)
        need_seed(self.seed)
        need(finite(self.retrain_lr) and self.retrain_lr > 0, "retrain-lr", self.retrain_lr, "a positive number")
        need(finite(self.timeout) and self.timeout > 0, "timeout", self.timeout, "a positive number of seconds")
        return self


# ----------------------------------------------------------------------------- random baseline
def random_genotype(ops: Iterable[str], nodes: int, seed: int, inputs_per_node: int = 2) -> Any:
    """A uniformly random DARTS cell pair: each node takes ``inputs_per_node`` distinct
    predecessors, each edge a uniformly random op (``none`` excluded, as in DARTS' derivation)."""
    from ..models.genotype import CellGenotype, Genotype

    ops = [op for op in ops if op != "none"]
    rng = random.Random(seed)

    def cell() -> CellGenotype:
        rows = []
        for j in range(nodes):
            sources = rng.sample(range(j + 2), min(inputs_per_node, j + 2))
            rows.append([(rng.choice(ops), s) for s in sorted(sources)])
        return CellGenotype.from_edges(rows)

    return Genotype(normal=cell(), reduce=cell(), meta={"method": "random", "seed": seed})


def skip_stats(genotype: Any) -> dict[str, Any]:
    counts = genotype.count("skip_connect")
    total = sum(counts.values())
    return {"skip_connections": counts, "skip_total": total, "skip_per_cell": total / max(1, len(counts))}


# ----------------------------------------------------------------------------- one job
def retrain_genotype(genotype: Any, config: QualityConfig, seed: int, train_set: Any, test_set: Any,
                     info: Any) -> dict[str, Any]:
    """Train ``genotype`` from scratch with the fixed recipe; test accuracy on the held-out test set."""
    import torch
    from torch.utils.data import Subset

    from ..models.network import DartsNetwork
    from ..runner.retrain import RECIPES, retrain

    recipe = RECIPES["cifar"].replace(
        epochs=config.retrain_epochs, batch_size=config.retrain_batch_size, learning_rate=config.retrain_lr,
        cutout=config.retrain_cutout, drop_path=config.retrain_drop_path,
        auxiliary_weight=config.retrain_auxiliary_weight, channels=config.retrain_channels,
        layers=config.retrain_layers or config.layers, stem=info.stem)
    if config.retrain_train_limit is not None and config.retrain_train_limit < len(train_set):
        perm = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))
        train_set = Subset(train_set, perm[: config.retrain_train_limit].tolist())
    torch.manual_seed(seed)
    model = DartsNetwork(genotype, channels=recipe.channels, layers=None if genotype.per_layer else recipe.layers,
                         num_classes=info.num_classes, in_chans=info.in_chans, stem=info.stem,
                         aux_head=recipe.auxiliary_weight > 0)
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux_head."))
    with tempfile.TemporaryDirectory(prefix="nni-decouple-bench-retrain-") as out:
        results = retrain(model, recipe, train_set, test_set, Path(out), seed=seed, progress_bar=False)
    return {"test_acc": results.get("val_acc"), "retrain_s": results.get("seconds"), "params": params}


@register_job("search", "random")
def run_quality_job(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One search + retraining (``kind="search"``), or one random architecture (``"random"``)."""
    import logging

    import torch

    from ..models.genotype import Genotype
    from ..runner.experiment import _quiet_nni, run_search

    config = QualityConfig(**payload["config"])
    seed = int(payload["seed"])
    _quiet_nni()
    set_threads(config.threads)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")
    torch.manual_seed(seed)
    train_set, test_set, info = cached_datasets(config.dataset)
    run: dict[str, Any] = {name: None for name in RUN_FIELDS}
    run["seed"] = seed
    if kind == "search":
        variant = BenchVariant(payload["method"])
        prepared = prepare_row(variant, dataclasses.replace(config, seed=seed), config.search_epochs,
                               config.search_train_limit)
        strategy = build_strategy(variant, prepared)
        started = time.perf_counter()
        result = run_search(prepared.search, strategy, None, progress_bar=False,
                            space_defaults=prepared.space_defaults)
        run["search_s"] = time.perf_counter() - started
        genotype: Genotype = result.genotype
    else:
        from ..models.ops import resolve_ops

        genotype = random_genotype(resolve_ops(config.random_ops), config.nodes, seed)
    run["genotype"] = genotype.to_dict()
    run.update(skip_stats(genotype))
    run.update(retrain_genotype(genotype, config, seed, train_set, test_set, info))
    return run


# ----------------------------------------------------------------------------- summary
def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if not r.get("error") and isinstance(r.get("test_acc"), (int, float))]
    accs = [float(r["test_acc"]) for r in ok]
    skips = [float(r["skip_per_cell"]) for r in ok if r.get("skip_per_cell") is not None]
    search = [float(r["search_s"]) for r in ok if r.get("search_s") is not None]
    return {
        "n": len(ok), "n_failed": len(runs) - len(ok),
        "acc_mean": statistics.fmean(accs) if accs else None,
        "acc_std": statistics.stdev(accs) if len(accs) > 1 else (0.0 if accs else None),
        "acc_min": min(accs) if accs else None, "acc_max": max(accs) if accs else None,
        "skip_per_cell_mean": statistics.fmean(skips) if skips else None,
        "search_s_mean": statistics.fmean(search) if search else None,
        "verdict": None,
    }


def verdict(summary: dict[str, Any], random_summary: dict[str, Any]) -> str:
    """Plain words: a method beats random only when its mean is above the random mean by more
    than the random spread (one standard deviation)."""
    mean, rmean, rstd = summary.get("acc_mean"), random_summary.get("acc_mean"), random_summary.get("acc_std")
    if mean is None:
        return "no result (every run failed)"
    if rmean is None:
        return "no random baseline to compare with"
    diff = 100 * (mean - rmean)
    if mean < rmean:
        return f"does not beat random ({-diff:.2f} points below the random mean)"
    if mean == rmean:
        return "does not beat random (equal to the random mean)"
    if (random_summary.get("n") or 0) < 2:
        return f"above the only random architecture ({diff:+.2f} points; no random spread to judge by)"
    if mean - rmean <= (rstd or 0.0):
        return f"does not clearly beat random ({diff:+.2f} points, within one standard deviation of random)"
    return f"beats random ({diff:+.2f} points, more than one random standard deviation)"


def run_quality(config: QualityConfig, methods: Iterable[str] | None = None,
                log: Callable[[str], None] = print, command: str | None = None) -> dict[str, Any]:
    """The quality benchmark for every registered method (or the ones asked for) and the random baseline."""
    config.validate()
    names = [row.method for row in discover(methods, variants=False) if not row.name]
    env = environment()
    env["load_average_before"] = env.pop("load_average")
    started = time.perf_counter()
    payload_config = dataclasses.asdict(config)
    train_set, test_set, _ = cached_datasets(config.dataset)
    result: dict[str, Any] = {"kind": "quality", "baseline": BASELINE, "config": payload_config,
                              "environment": env, "command": command, "run_fields": list(RUN_FIELDS),
                              "summary_fields": list(SUMMARY_FIELDS), "train_images": len(train_set),
                              "test_images": len(test_set), "methods": {}, "random": {}}

    def job(kind: str, seed: int, label: str, **extra: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = run_job(kind, {"config": payload_config, "seed": seed, **extra}, config.isolate, config.timeout,
                      config.threads, log)
        run = {name: None for name in RUN_FIELDS}
        run["seed"] = seed
        run.update(out)
        status = ("error: " + str(run["error"]).splitlines()[0]) if run.get("error") else (
            f"test acc {100 * run['test_acc']:.2f}%, skips {run['skip_total']}")
        log(f"[bench quality] {label} seed {seed}: {status} ({time.perf_counter() - t0:.0f} s)")
        return run

    for name in names:
        runs = [job("search", config.seed + i, name, method=name) for i in range(config.seeds)]
        result["methods"][name] = {"runs": runs, "summary": summarize(runs)}
    random_runs = [job("random", config.seed + 1000 + k, "random") for k in range(config.random)]
    result["random"] = {"runs": random_runs, "summary": summarize(random_runs)}
    for entry in result["methods"].values():
        entry["summary"]["verdict"] = verdict(entry["summary"], result["random"]["summary"])
    result["environment"]["load_average_after"] = load_average()
    result["seconds"] = time.perf_counter() - started
    return result


def quality_table(result: dict[str, Any], markdown: bool = False) -> str:

    def pct(x: Any) -> str:
        return "-" if x is None else f"{100 * x:.2f}"

    header = ["method", "runs", "test acc % (mean ± std)", "min", "max", "skips / cell", "search s", "verdict"]
    lines = []
    entries = list(result["methods"].items()) + [("random", result["random"])]
    for name, entry in entries:
        s = entry["summary"]
        acc = "-" if s["acc_mean"] is None else f"{pct(s['acc_mean'])} ± {pct(s['acc_std'])}"
        runs = f"{s['n']}" + (f" ({s['n_failed']} failed)" if s["n_failed"] else "")
        skip = "-" if s["skip_per_cell_mean"] is None else f"{s['skip_per_cell_mean']:.2f}"
        search = "-" if s["search_s_mean"] is None else f"{s['search_s_mean']:.0f}"
        lines.append([name, runs, acc, pct(s["acc_min"]), pct(s["acc_max"]), skip, search,
                      s.get("verdict") or ("baseline" if name == "random" else "-")])
    return render_table(header, lines, markdown)
