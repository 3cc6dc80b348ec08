"""Search-cost benchmark: every registered method side by side with NNI's own ``DARTS()``.

Each method's claim (cheaper step, less memory, faster search) is measured here on the same
space, batch, data and threads, in the same run, and reported as a ratio to NNI's DARTS measured
in that run (and, for variants that name one, to a reference row of their own method).

What a row measures (one fresh subprocess per row, so that memory does not carry over):

- **step times**: the method's Lightning module is driven through a real Lightning ``fit`` on a
  fixed set of batches; its ``training_step`` is replaced by a driver that calls the *parts* of a
  step (the whole ``training_step``, the architecture step alone, the weight step alone, plus any
  extra part the module declares) for ``warmup + steps`` calls each and times the last ``steps``
  (median, also mean/min/max). Timing inside ``fit`` keeps the trainer, optimizers and logging
  exactly as in a search, and leaves the data loading and loop overhead (the same for every
  method) out of the figures.
- **peak memory**: process RSS peak (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``
  before the supernet is built) up to the end of the whole-step phase, and the same minus the
  RSS before the supernet was built (``peak_rss_delta_mb``: the supernet, its activations and
  optimizer state, without the interpreter, torch, NNI and the data). On CUDA, also
  ``torch.cuda.max_memory_allocated``.
- **architecture parameters**: elements of ``module.arch_parameters()`` after any stage setup.
- **end-to-end**: wall time of a short search (``--e2e-epochs`` on ``--e2e-train-limit`` images)
  through NNI's experiment, from start to exported architecture, as ``nni-decouple search`` runs
  it, with each method's own data handling (subsets, sparse updates) and schedule.

How a method plugs in (see ``benchmarks/README.md``): every method registered in
:data:`nni_decouple.strategies.METHODS` is measured with its CLI defaults. Its strategy module
may define ``bench_variants(method_name) -> list[dict]`` to add rows (other options, a stage of
its schedule, a reference row and targets), and its Lightning module may define
``bench_parts() -> dict[str, callable(batch, batch_idx)]`` when its step does not split into
``arch_step``/``weight_step`` the way :class:`~nni_decouple.search.schedules.BilevelModule`'s does.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..options import finite, need, need_precision, need_seed, need_whole
from .harness import (
    BASELINE,
    BenchVariant,
    build_strategy,
    cached_datasets,
    discover,
    environment,
    find_variant,
    load_average,
    prepare_row,
    progress,
    register_job,
    render_table,
    run_job,
    set_threads,
)
from .probes import PARTS, MemoryProbe, StepCounter, StepDriver, default_parts, fixed_loaders, time_summary

#: Fields of every cost row; the test checks that each row carries all of them.
ROW_FIELDS = (
    "id", "method", "variant", "help", "error", "strategy", "module", "space", "reference", "targets",
    "time_step_s", "time_arch_s", "time_weight_s", "cpu_step_s", "cpu_arch_s", "cpu_weight_s", "times", "part_errors",
    "peak_rss_mb", "peak_rss_delta_mb", "rss_before_mb", "memory_probe", "cuda_max_allocated_mb",
    "arch_params", "weight_params", "e2e_s", "e2e_cpu_s", "e2e_steps", "wall_s", "rounds", "ratios",
    "ratios_to_reference", "target_checks", "fast", "precision", "floor_s", "step_to_floor",
)
#: Figures given as a ratio to the baseline (and to a variant's reference).
RATIO_FIELDS = ("time_step_s", "time_arch_s", "time_weight_s", "cpu_step_s", "cpu_arch_s", "cpu_weight_s",
                "peak_rss_delta_mb", "peak_rss_mb", "cuda_max_allocated_mb", "arch_params", "e2e_s", "e2e_cpu_s")



# ----------------------------------------------------------------------------- config
@dataclass
class CostConfig:
    """Options of the cost benchmark (``nni-decouple bench --cost``)."""

    layers: int = 5
    channels: int = 8
    nodes: int = 4
    ops: str | None = None  # None: each method's default op set
    sharing: str | None = None  # None: each method's default sharing
    batch_size: int = 8
    warmup: int = 1
    steps: int = 3
    threads: int = 1
    device: str = "cpu"
    dataset: str = "mnist5k"
    seed: int = 0
    e2e_epochs: int = 2
    e2e_train_limit: int = 64
    e2e: bool = True
    rounds: int = 1
    isolate: bool = True
    timeout: float = 1800.0
    #: The fast path (docs/performance.md) for every row but NNI's ``DARTS()``, which runs as a user runs it.
    fast: bool = True
    #: Lightning precision of every row but the baseline (``bf16-mixed``, ``16-mixed`` on CUDA).
    precision: str = "32-true"
    #: Also measure the compute floor (:mod:`.floor`) and give each step as a ratio to it.
    floor: bool = True

    def validate(self) -> CostConfig:
        for name in ("layers", "channels", "nodes", "batch_size", "steps", "threads", "e2e_epochs", "rounds"):
            need_whole(name.replace("_", "-"), getattr(self, name), 1)
        need_whole("warmup", self.warmup, 0)
        need_seed(self.seed)
        need(finite(self.timeout) and self.timeout > 0, "timeout", self.timeout, "a positive number of seconds")
        if self.e2e_train_limit < 2 * self.batch_size:
            raise ConfigError(f"--e2e-train-limit ({self.e2e_train_limit}) must hold at least two batches "
                              f"(2 x --batch-size = {2 * self.batch_size}): one for weights, one for the architecture")
        need_precision(self.precision, self.device)
        return self


def row_options(config: CostConfig, variant: BenchVariant) -> tuple[bool, str]:
    """``(fast, precision)`` of a row: NNI's ``DARTS()`` always runs as a user runs it (plain, fp32)."""
    if variant.id == BASELINE:
        return False, "32-true"
    return config.fast, config.precision


def apply_fast(strategy: Any, fast: bool) -> list[Any]:
    """Set a strategy's cell fast path; the trainer callbacks of the fast path (the memory format)."""
    from ..runner.callbacks import MemoryFormat

    if hasattr(strategy, "fast"):
        strategy.fast = fast
    return [MemoryFormat()] if fast else []


def _run_experiment(space: Any, evaluator: Any, strategy: Any, workdir: Path) -> None:
    from ..runner.experiment import _quiet_nni

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
        from nni.nas.experiment import NasExperiment
        from nni.nas.experiment.config import NasExperimentConfig

    exp_config = NasExperimentConfig.default(space, evaluator, strategy)
    exp_config.experiment_working_directory = str(workdir)
    experiment = NasExperiment(space, evaluator, strategy, exp_config)
    _quiet_nni()
    experiment.run()


def _accelerator(device: str) -> str:
    return "cuda" if device == "cuda" else "cpu"


@register_job("cost")
def _cost_job(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return measure(CostConfig(**payload["config"]), find_variant(payload["row"]))


def measure(config: CostConfig, variant: BenchVariant) -> dict[str, Any]:
    """Measure one row in this process (the runner calls it in a fresh subprocess per row)."""
    import logging

    import torch
    from pytorch_lightning import Callback

    from ..runner.evaluator import build_evaluator, build_trainer
    from ..runner.experiment import _quiet_nni

    started_wall = time.perf_counter()
    _quiet_nni()
    set_threads(config.threads)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no GPU: use --device cpu")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")
    torch.manual_seed(config.seed)
    row = empty_row(variant)
    train_set, _, info = cached_datasets(config.dataset)
    sync = torch.cuda.synchronize if config.device == "cuda" else (lambda: None)

    # ---- step parts, memory, parameters
    num_parts = 3 + 4  # whole step, arch, weight and room for a few declared extra parts
    total_calls = num_parts * (config.warmup + config.steps)
    train_loader, val_loader = fixed_loaders(train_set, config.batch_size, 50 * total_calls, config.seed)
    prepared = prepare_row(variant, config, config.e2e_epochs)
    sconfig = prepared.search
    probe = MemoryProbe()
    state: dict[str, Any] = {}

    def on_phase_end(part: str) -> None:
        times = state["driver"].times.get(part) or []
        progress(f"{variant.id}: {part} x{len(times)}, median {_fmt_s(statistics.median(times)) if times else '-'}")
        if part == "step":
            sync()
            state["peak_rss_mb"] = probe.peak_mb()
            if config.device == "cuda":
                state["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20

    class Install(Callback):
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            def prepare() -> dict[str, Callable[[Any, int], Any]]:
                if variant.setup is not None:
                    variant.setup(pl_module)
                parts = default_parts(pl_module, original)
                if variant.parts is not None:
                    parts.update(variant.parts(pl_module))
                arch = {id(p): p for p in pl_module.arch_parameters()}
                state["arch_params"] = sum(p.numel() for p in arch.values())
                state["weight_params"] = sum(p.numel() for p in pl_module.parameters() if id(p) not in arch)
                return parts

            original = pl_module.training_step
            state["module"] = type(pl_module).__name__
            state["driver"] = pl_module.training_step = StepDriver(pl_module, prepare, config.warmup, config.steps,
                                                                   sync, on_phase_end)

    fast, precision = row_options(config, variant)
    row.update(fast=fast, precision=precision)
    strategy = build_strategy(variant, prepared)
    trainer = build_trainer(None, config.e2e_epochs, accelerator=_accelerator(config.device), progress_bar=False,
                            callbacks=[*apply_fast(strategy, fast), Install()], limit_val_batches=0,
                            precision=precision)
    space = prepared.build_space(info)
    row["space"] = {"ops": list(space.op_names), "num_ops": len(space.op_names), "sharing": space.sharing,
                    "layers": sconfig.layers, "channels": sconfig.channels, "nodes": sconfig.nodes,
                    "batch_size": config.batch_size, "dataset": config.dataset}
    row["strategy"] = type(strategy).__name__
    evaluator = build_evaluator(train_loader, val_loader, trainer, learning_rate=sconfig.learning_rate,
                                learning_rate_min=sconfig.learning_rate_min, weight_decay=sconfig.weight_decay,
                                max_epochs=config.e2e_epochs)
    if config.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = MemoryProbe.rss_mb()
    probe.reset()
    progress(f"{variant.id}: supernet of {sconfig.layers} cells, {sconfig.channels} channels, batch "
             f"{config.batch_size}; timing {config.warmup} + {config.steps} calls per part")
    with tempfile.TemporaryDirectory(prefix="nni-decouple-bench-") as work:
        _run_experiment(space, evaluator, strategy, Path(work))
    probe.stop()
    driver: StepDriver | None = state.get("driver")
    if driver is None:
        raise RuntimeError("the benchmark driver was never installed: the strategy did not train through Lightning")
    if not driver.finished:
        driver.errors.setdefault("step" if not driver.times.get("step") else "plan",
                                 f"training stopped after {driver.calls} of {len(driver.plan) or '?'} planned calls")
    row["times"] = {part: time_summary(t, driver.cpu.get(part, [])) for part, t in driver.times.items()}
    for part in PARTS:
        row[f"time_{part}_s"] = row["times"].get(part, {}).get("median")
        row[f"cpu_{part}_s"] = row["times"].get(part, {}).get("cpu_median")
    row["part_errors"] = {k: v for k, v in driver.errors.items() if k != "traceback"}
    if "step" in driver.errors:
        row["error"] = f"step failed: {driver.errors['step']}\n{driver.errors.get('traceback', '')}".strip()
    row["rss_before_mb"] = rss_before
    row["peak_rss_mb"] = state.get("peak_rss_mb")
    if row["peak_rss_mb"] is not None and rss_before is not None and probe.method != "ru_maxrss":
        row["peak_rss_delta_mb"] = max(0.0, row["peak_rss_mb"] - rss_before)
    row["memory_probe"] = probe.method
    row["cuda_max_allocated_mb"] = state.get("cuda_max_allocated_mb")
    for key in ("arch_params", "weight_params", "module"):
        row[key] = state.get(key)

    # ---- end to end
    if config.e2e and variant.runs_end_to_end and row["error"] is None:
        progress(f"{variant.id}: end-to-end search, {config.e2e_epochs} epochs on {config.e2e_train_limit} images")
        row["e2e_s"], row["e2e_cpu_s"], row["e2e_steps"] = end_to_end(config, variant, train_set, info)
        progress(f"{variant.id}: end-to-end {_fmt_s(row['e2e_s'])} ({row['e2e_steps']} steps)")
    row["wall_s"] = time.perf_counter() - started_wall
    return row


def end_to_end(config: CostConfig, variant: BenchVariant, train_set: Any, info: Any) -> tuple[float, float, int]:
    """Wall time of a short search, start to exported architecture, as ``nni-decouple search`` runs it."""
    import torch
    from torch.utils.data import Subset

    from ..data import bilevel_split
    from ..runner.evaluator import build_evaluator, build_trainer
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
        from nni.nas.evaluator.pytorch import DataLoader

    torch.manual_seed(config.seed)
    perm = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.seed))
    subset = Subset(train_set, perm[: config.e2e_train_limit].tolist())
    weight_half, arch_half = bilevel_split(subset, 0.5, config.seed)
    loaders = [DataLoader(half, batch_size=config.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(config.seed + k))
               for k, half in enumerate((weight_half, arch_half))]
    prepared = prepare_row(variant, config, config.e2e_epochs, config.e2e_train_limit)
    sconfig = prepared.search
    steps = StepCounter.make()
    fast, precision = row_options(config, variant)
    strategy = build_strategy(variant, prepared)
    trainer = build_trainer(None, config.e2e_epochs, accelerator=_accelerator(config.device), progress_bar=False,
                            callbacks=[*apply_fast(strategy, fast), steps], precision=precision)
    evaluator = build_evaluator(loaders[0], loaders[1], trainer, learning_rate=sconfig.learning_rate,
                                learning_rate_min=sconfig.learning_rate_min, weight_decay=sconfig.weight_decay,
                                max_epochs=config.e2e_epochs)
    space = prepared.build_space(info)
    started, cpu_started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="nni-decouple-bench-e2e-") as work:
        _run_experiment(space, evaluator, strategy, Path(work))
        with torch.no_grad():
            strategy.oneshot_module.export()
    return time.perf_counter() - started, time.process_time() - cpu_started, steps.count

def empty_row(variant: BenchVariant) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in ROW_FIELDS}
    row.update(id=variant.id, method=variant.method, variant=variant.name or None, help=variant.help or None,
               reference=variant.reference, targets=dict(variant.targets), times={}, part_errors={}, ratios={},
               ratios_to_reference={}, target_checks={})
    return row



# ----------------------------------------------------------------------------- the runner
def _ratio(value: Any, base: Any) -> float | None:
    if isinstance(value, (int, float)) and isinstance(base, (int, float)) and base > 0:
        return value / base
    return None


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Every figure as a ratio to NNI's DARTS of the same run, to a variant's reference row, and
    the variant's targets checked (against its reference, else against DARTS)."""
    by_id = {row["id"]: row for row in rows}
    base = by_id.get(BASELINE, {})
    for row in rows:
        row["ratios"] = {f: _ratio(row.get(f), base.get(f)) for f in RATIO_FIELDS}
        ref = by_id.get(row.get("reference") or "")
        row["ratios_to_reference"] = {f: _ratio(row.get(f), ref.get(f)) for f in RATIO_FIELDS} if ref else {}
        checks = {}
        for name, limit in (row.get("targets") or {}).items():
            fname = name if name in RATIO_FIELDS else f"{name}_s" if f"{name}_s" in RATIO_FIELDS else name
            ratio = (row["ratios_to_reference"] if ref else row["ratios"]).get(fname)
            checks[name] = {"ratio": ratio, "limit": limit, "against": row.get("reference") or BASELINE,
                            "met": None if ratio is None else ratio <= limit}
        row["target_checks"] = checks


#: Figures merged over rounds by their median.
_MEDIAN_FIELDS = ("time_step_s", "time_arch_s", "time_weight_s", "cpu_step_s", "cpu_arch_s", "cpu_weight_s",
                  "peak_rss_mb", "peak_rss_delta_mb", "rss_before_mb", "cuda_max_allocated_mb", "e2e_s", "e2e_cpu_s",
                  "wall_s")


def merge_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from several rounds of the same row: the median of each figure over the rounds
    that succeeded (the per-round figures stay in ``rounds``)."""
    ok = [r for r in results if not r.get("error")]
    merged = dict(ok[0] if ok else results[0])
    merged["rounds"] = [{k: r.get(k) for k in ("error", *_MEDIAN_FIELDS)} for r in results]
    if len(ok) < 2:
        return merged
    for name in _MEDIAN_FIELDS:
        values = [r[name] for r in ok if isinstance(r.get(name), (int, float))]
        merged[name] = statistics.median(values) if values else None
    times: dict[str, Any] = {}
    for part in {p for r in ok for p in (r.get("times") or {})}:
        stats = [r["times"][part] for r in ok if (r.get("times") or {}).get(part, {}).get("n")]
        if not stats:
            continue
        cpu = [s for s in stats if s.get("cpu_median") is not None]
        times[part] = {"median": statistics.median(s["median"] for s in stats),
                       "mean": statistics.fmean(s["mean"] for s in stats), "min": min(s["min"] for s in stats),
                       "max": max(s["max"] for s in stats), "n": sum(s["n"] for s in stats),
                       "cpu_median": statistics.median(s["cpu_median"] for s in cpu) if cpu else None,
                       "cpu_mean": statistics.fmean(s["cpu_mean"] for s in cpu) if cpu else None}
    merged["times"] = times
    return merged


def run_cost(config: CostConfig, methods: Iterable[str] | None = None, variants: bool = True,
             log: Callable[[str], None] = print, command: str | None = None) -> dict[str, Any]:
    """The cost benchmark: one row per method and variant, NNI's DARTS first; with several
    rounds, every row runs once per round (interleaved) and figures are medians over rounds."""
    config.validate()
    rows_to_run = discover(methods, variants)
    env = environment()
    env["load_average_before"] = env.pop("load_average")
    started = time.perf_counter()
    set_threads(config.threads)
    per_row: dict[str, list[dict[str, Any]]] = {v.id: [] for v in rows_to_run}
    for round_ in range(config.rounds):
        for variant in rows_to_run:
            label = variant.id + (f" (round {round_ + 1}/{config.rounds})" if config.rounds > 1 else "")
            log(f"[bench cost] {label} ...")
            t0 = time.perf_counter()
            result = run_job("cost", {"config": dataclasses.asdict(config), "row": variant.id}, config.isolate,
                             config.timeout, config.threads, log)
            row = empty_row(variant)
            row.update(result)
            per_row[variant.id].append(row)
            status = "error: " + str(row["error"]).splitlines()[0] if row.get("error") else (
                f"step {_fmt_s(row['time_step_s'])}, e2e {_fmt_s(row['e2e_s'])}")
            log(f"[bench cost] {label}: {status} ({time.perf_counter() - t0:.0f} s)")
    rows = [merge_rounds(per_row[v.id]) for v in rows_to_run]
    add_ratios(rows)
    floors = measure_floors(config, rows, log) if config.floor else {}
    for row in rows:
        floor = floors.get(tuple((row.get("space") or {}).get("ops") or ()))
        row["floor_s"] = floor
        row["step_to_floor"] = _ratio(row.get("time_step_s"), floor)
    env["load_average_after"] = load_average()
    return {"kind": "cost", "baseline": BASELINE, "config": dataclasses.asdict(config), "environment": env,
            "command": command, "seconds": time.perf_counter() - started, "fields": list(ROW_FIELDS), "rows": rows,
            "floors": [{"ops": list(k), "floor_s": v} for k, v in floors.items()]}


def measure_floors(config: CostConfig, rows: list[dict[str, Any]], log: Callable[[str], None]) -> dict[tuple, float]:
    """The compute floor (:mod:`.floor`) of every op set the rows searched, in one isolated job each."""
    from . import floor  # noqa: F401  (registers the job kind)

    floors: dict[tuple, float] = {}
    for ops in dict.fromkeys(tuple(r["space"]["ops"]) for r in rows if r.get("space")):
        log(f"[bench cost] compute floor of {len(ops)} ops ...")
        payload = {"ops": list(ops), "layers": config.layers, "channels": config.channels, "nodes": config.nodes,
                   "batch_size": config.batch_size, "dataset": config.dataset, "threads": config.threads,
                   "device": config.device, "warmup": config.warmup, "steps": config.steps}
        result = run_job("floor", payload, config.isolate, config.timeout, config.threads, log)
        if result.get("error"):
            log(f"[bench cost] compute floor failed: {str(result['error']).splitlines()[0]}")
            continue
        floors[ops] = result["floor_s"]
        log(f"[bench cost] compute floor: {_fmt_s(result['floor_s'])} ({result['op_calls']} op calls)")
    return floors


# ----------------------------------------------------------------------------- table
def _fmt_s(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) else (f"{x * 1000:.0f}ms" if x < 1 else f"{x:.2f}s")


def _fmt_num(x: Any, unit: str = "") -> str:
    if not isinstance(x, (int, float)):
        return "-"
    return f"{x:.0f}{unit}" if abs(x) >= 10 else f"{x:.1f}{unit}"


def _fmt_ratio(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{x:.2f}x"


COLUMNS = (("step", "time_step_s", _fmt_s), ("arch", "time_arch_s", _fmt_s), ("weight", "time_weight_s", _fmt_s),
           ("step CPU", "cpu_step_s", _fmt_s),
           ("peak RSS +", "peak_rss_delta_mb", lambda x: _fmt_num(x, "MB")),
           ("arch params", "arch_params", lambda x: "-" if x is None else str(x)),
           ("end-to-end", "e2e_s", _fmt_s))
#: Columns after the ratio-to-DARTS ones: the whole step as a multiple of the compute floor.
FLOOR_COLUMN = "step / floor"


def cost_table(result: dict[str, Any], markdown: bool = False) -> str:
    """Each figure with its ratio to NNI's DARTS of the same run."""
    header = ["row", *[c[0] for c in COLUMNS]]
    if any(row.get("cuda_max_allocated_mb") for row in result["rows"]):
        header.append("CUDA max")
    with_floor = any(row.get("step_to_floor") for row in result["rows"])
    if with_floor:
        header.append(FLOOR_COLUMN)
    lines = []
    for row in result["rows"]:
        if row.get("error"):
            lines.append([row["id"], "error (below)"] + ["-"] * (len(header) - 2))
            continue
        cells = [row["id"]]
        for _, key, fmt in COLUMNS:
            cells.append(f"{fmt(row.get(key))} ({_fmt_ratio(row['ratios'].get(key))})"
                         if row.get(key) is not None else "-")
        if "CUDA max" in header:
            cells.append(f"{_fmt_num(row.get('cuda_max_allocated_mb'), 'MB')} "
                         f"({_fmt_ratio(row['ratios'].get('cuda_max_allocated_mb'))})")
        if with_floor:
            cells.append(_fmt_ratio(row.get("step_to_floor")))
        lines.append(cells)
    table = render_table(header, lines, markdown)
    errors = [f"{row['id']}: {str(row['error']).splitlines()[0]}" for row in result["rows"] if row.get("error")]
    errors += [f"{row['id']}: part(s) failed: {row['part_errors']}" for row in result["rows"]
               if not row.get("error") and row.get("part_errors")]
    if errors and not markdown:
        table += "\n\nerrors:\n" + "\n".join(f"  {e}" for e in errors)
    return table


def reference_table(result: dict[str, Any], markdown: bool = False) -> str | None:
    """Ratios of variants to their own reference rows, and their targets."""
    rows = [r for r in result["rows"] if (r.get("reference") or r.get("targets")) and not r.get("error")]
    if not rows:
        return None
    header = ["row", "against", "step", "arch", "weight", "step CPU", "peak RSS +", "end-to-end", "targets"]
    lines = []
    for row in rows:
        ratios = row["ratios_to_reference"] if row.get("reference") else row["ratios"]
        checks = ", ".join(f"{k} {_fmt_ratio(c['ratio'])} <= {c['limit']}x: "
                           f"{'met' if c['met'] else 'NOT met' if c['met'] is False else 'n/a'}"
                           for k, c in row["target_checks"].items()) or "-"
        lines.append([row["id"], row.get("reference") or BASELINE,
                      *[_fmt_ratio(ratios.get(k)) for k in ("time_step_s", "time_arch_s", "time_weight_s", "cpu_step_s",
                                                            "peak_rss_delta_mb", "e2e_s")], checks])
    return render_table(header, lines, markdown)


