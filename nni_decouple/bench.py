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

import argparse
import collections
import dataclasses
import functools
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .options import finite, need, need_seed, need_whole

#: The method every ratio is taken against: NNI's own DARTS, unchanged.
BASELINE = "darts"

#: Step parts every row reports (``None`` where a module has no such part).
PARTS = ("step", "arch", "weight")

#: Fields of every cost row; the test checks that each row carries all of them.
ROW_FIELDS = (
    "id", "method", "variant", "help", "error", "strategy", "module", "space", "reference", "targets",
    "time_step_s", "time_arch_s", "time_weight_s", "cpu_step_s", "cpu_arch_s", "cpu_weight_s", "times", "part_errors",
    "peak_rss_mb", "peak_rss_delta_mb", "rss_before_mb", "memory_probe", "cuda_max_allocated_mb",
    "arch_params", "weight_params", "e2e_s", "e2e_cpu_s", "e2e_steps", "wall_s", "rounds", "ratios",
    "ratios_to_reference", "target_checks",
)
#: Figures given as a ratio to the baseline (and to a variant's reference).
RATIO_FIELDS = ("time_step_s", "time_arch_s", "time_weight_s", "cpu_step_s", "cpu_arch_s", "cpu_weight_s",
                "peak_rss_delta_mb", "peak_rss_mb", "cuda_max_allocated_mb", "arch_params", "e2e_s", "e2e_cpu_s")


#: Prefix of the progress lines a worker prints (the runner forwards them).
PROGRESS = "[bench-progress]"


def _print_progress(message: str) -> None:
    print(f"{PROGRESS} {message}", file=sys.stderr, flush=True)


#: Where progress lines go: printed with :data:`PROGRESS` in a worker, to the runner's log in-process.
_progress_sink: Callable[[str], None] = _print_progress


def progress(message: str) -> None:
    _progress_sink(message)


# ----------------------------------------------------------------------------- variants
@dataclass
class BenchVariant:
    """One row of the cost table: a method with its defaults, or a variant it declares.

    A strategy module declares variants as dicts with these keys (all optional but ``name``)
    from ``bench_variants(method_name)``; see ``benchmarks/README.md``.
    """

    method: str
    name: str = ""  # "" = the method with its CLI defaults
    help: str = ""
    #: CLI option values to change before ``Method.build(args)`` (e.g. ``{"partial_k": 1}``).
    args: dict[str, Any] = field(default_factory=dict)
    #: Build the strategy yourself from the (overridden) CLI namespace instead of ``Method.build``.
    build: Callable[[argparse.Namespace], Any] | None = None
    #: Called once with the Lightning module, inside ``fit`` before the first measured call
    #: (trainer attached, optimizers configured): switch to the stage to measure.
    setup: Callable[[Any], None] | None = None
    #: ``parts(module) -> {part: fn(batch, batch_idx)}``: replaces/extends the measured parts.
    parts: Callable[[Any], dict[str, Callable[[Any, int], Any]]] | None = None
    #: Space overrides: ``ops``, ``sharing``, ``nodes``.
    space: dict[str, Any] = field(default_factory=dict)
    #: Another row id (e.g. ``"dnas[k1]"``) to report extra ratios against.
    reference: str | None = None
    #: ``{field: max ratio}`` checked against ``reference`` (or against DARTS without one).
    targets: dict[str, float] = field(default_factory=dict)
    #: Whether to run the short end-to-end search. Default: always for a method's own row; for a
    #: variant only when it has an end-to-end target (``e2e``), since the search is the costliest
    #: part of a row and a stage ``setup`` does not apply to a whole search anyway.
    end_to_end: bool | None = None

    @property
    def id(self) -> str:
        return self.method if not self.name else f"{self.method}[{self.name}]"

    @property
    def runs_end_to_end(self) -> bool:
        if self.end_to_end is not None:
            return bool(self.end_to_end)
        return not self.name or any(t in ("e2e", "e2e_s", "e2e_cpu", "e2e_cpu_s") for t in self.targets)


_VARIANT_KEYS = {f.name for f in dataclasses.fields(BenchVariant)} - {"method"}


def _as_variant(method: str, item: Any) -> BenchVariant:
    if isinstance(item, BenchVariant):
        return dataclasses.replace(item, method=method)
    if not isinstance(item, dict):
        raise ConfigError(f"bench_variants() of method {method!r} must return dicts, got {type(item).__name__}")
    unknown = set(item) - _VARIANT_KEYS
    if unknown:
        raise ConfigError(f"bench variant of {method!r} has unknown keys {sorted(unknown)}: "
                          f"use {', '.join(sorted(_VARIANT_KEYS))}")
    if not item.get("name") or not str(item["name"]).replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"bench variant of {method!r} needs a 'name' of letters, digits, '-' or '_'; "
                          f"got {item.get('name')!r}")
    return BenchVariant(method=method, **item)


def declared_variants(method: Any) -> list[BenchVariant]:
    """The variants a method's strategy module declares through ``bench_variants(name)``."""
    module = sys.modules.get(getattr(method.build, "__module__", ""), None)
    hook = getattr(module, "bench_variants", None)
    if not callable(hook):
        return []
    variants = [_as_variant(method.name, item) for item in (hook(method.name) or [])]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"bench_variants() of method {method.name!r} repeats a name: {names}")
    return variants


def discover(methods: Iterable[str] | None = None, variants: bool = True) -> list[BenchVariant]:
    """Rows to measure: NNI's DARTS first, then every registered method (or the ones asked for),
    each followed by the variants it declares. ``methods`` entries are method names or row ids
    (``dots[topology]``)."""
    from .strategies import load_all

    registry = load_all()
    all_rows: list[BenchVariant] = []
    for name in sorted(registry, key=lambda n: (n != BASELINE, n)):
        if registry[name].same_default_as is not None:  # its default search is another row's
            continue
        all_rows.append(BenchVariant(name))
        if variants:
            all_rows.extend(declared_variants(registry[name]))
    if methods is None:
        return all_rows
    wanted = [m.strip() for m in methods if m.strip()]
    ids = {row.id for row in all_rows}
    unknown = [m for m in wanted if m not in registry and m not in ids]
    if unknown:
        raise ConfigError(f"unknown method or variant {', '.join(unknown)}: choose from {', '.join(sorted(ids))}")
    rows = [row for row in all_rows
            if row.method == BASELINE and not row.name  # the baseline is always measured
            or row.id in wanted or (row.method in wanted and (variants or not row.name))]
    for row in list(rows):  # a variant's reference row is measured too
        if row.reference and row.reference not in {r.id for r in rows}:
            rows.extend(r for r in all_rows if r.id == row.reference)
    order = {row.id: i for i, row in enumerate(all_rows)}
    return sorted(rows, key=lambda r: order[r.id])


def find_variant(row_id: str) -> BenchVariant:
    for row in discover(variants=True):
        if row.id == row_id:
            return row
    raise ConfigError(f"no benchmark row {row_id!r}")


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

    def validate(self) -> CostConfig:
        for name in ("layers", "channels", "nodes", "batch_size", "steps", "threads", "e2e_epochs", "rounds"):
            need_whole(name.replace("_", "-"), getattr(self, name), 1)
        need_whole("warmup", self.warmup, 0)
        need_seed(self.seed)
        need(finite(self.timeout) and self.timeout > 0, "timeout", self.timeout, "a positive number of seconds")
        if self.e2e_train_limit < 2 * self.batch_size:
            raise ConfigError(f"--e2e-train-limit ({self.e2e_train_limit}) must hold at least two batches "
                              f"(2 x --batch-size = {2 * self.batch_size}): one for weights, one for the architecture")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"--device must be 'cpu' or 'cuda', got {self.device!r}")
        return self


# ----------------------------------------------------------------------------- environment
def set_threads(threads: int) -> None:
    """The same intra-op threads for every method (inter-op 1: steps run one op at a time)."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process (in-process runs)
        pass


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment() -> dict[str, Any]:
    """Machine, versions and load: what makes timings comparable (or not)."""
    import nni
    import pytorch_lightning
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):
        mem_gb = None
    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
        "cpu": cpu, "cpu_count": os.cpu_count(), "memory_gb": mem_gb,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "nni": nni.__version__, "pytorch_lightning": pytorch_lightning.__version__,
        "git_commit": commit, "load_average": load_average(),
    }


class MemoryProbe:
    """Peak RSS since :meth:`reset`: Linux ``VmHWM`` reset through ``clear_refs``, else a sampler
    thread, else ``ru_maxrss`` (peak since process start)."""

    def __init__(self) -> None:
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self._peak = 0.0
        self.method = "none"

    @staticmethod
    def rss_mb() -> float | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _hwm_mb() -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    def reset(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            if self._hwm_mb() is not None:
                self.method = "VmHWM"
                return
        except OSError:
            pass
        if self.rss_mb() is not None:
            self.method = "sampled"
            self._peak = self.rss_mb() or 0.0
            self._stop.clear()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        else:
            self.method = "ru_maxrss"

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, self.rss_mb() or 0.0)

    def peak_mb(self) -> float:
        if self.method == "VmHWM":
            return self._hwm_mb() or 0.0
        if self.method == "sampled":
            return max(self._peak, self.rss_mb() or 0.0)
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 20

    def stop(self) -> None:
        self._stop.set()


# ----------------------------------------------------------------------------- building a row
def method_namespace(method: Any, config: Any, overrides: dict[str, Any] | None = None) -> argparse.Namespace:
    """The CLI namespace of ``nni-decouple search METHOD`` with its defaults, the benchmark's
    space and batch, and a variant's overrides: what ``Method.build`` expects."""
    from .commands.search import add_common_arguments

    parser = argparse.ArgumentParser(add_help=False)
    add_common_arguments(parser)
    method.add_arguments(parser)
    args = parser.parse_args([])
    args.method = method.name
    for name in ("layers", "channels", "nodes", "batch_size", "seed", "dataset"):
        if hasattr(config, name):
            setattr(args, name, getattr(config, name))
    for name in ("ops", "sharing"):
        if getattr(config, name, None) is not None:
            setattr(args, name, getattr(config, name))
    if hasattr(config, "e2e_epochs"):
        args.epochs = config.e2e_epochs
    for key, value in (overrides or {}).items():
        if not hasattr(args, key):
            raise ConfigError(f"bench variant option {key!r} is not an option of method {method.name!r}: "
                              f"use one of {', '.join(sorted(vars(args)))}")
        setattr(args, key, value)
    return args


@dataclass
class PreparedRow:
    """What ``nni-decouple search`` would build for a row: its CLI namespace, search config and
    space options (after the method's ``prepare`` hook)."""

    method: Any
    args: argparse.Namespace
    search: Any  # SearchConfig
    space_defaults: dict[str, Any]

    def build_space(self, info: Any) -> Any:
        from .experiment import build_space

        return build_space(self.search, info.num_classes, info.in_chans, info.stem, self.space_defaults)


def prepare_row(variant: BenchVariant, config: Any, epochs: int, train_limit: int | None = None) -> PreparedRow:
    """Mirror ``nni-decouple search``: the method's CLI defaults, the benchmark's space and batch,
    the variant's options and space, then the method's ``prepare`` hook."""
    from .commands.search import config_from_args
    from .strategies import get_method

    method = get_method(variant.method)
    args = method_namespace(method, config, variant.args)
    for key in ("ops", "sharing", "nodes"):
        if key in variant.space:
            setattr(args, key, variant.space[key])
    args.epochs, args.train_limit = epochs, train_limit
    space_defaults = dict(method.space_defaults)
    prepare = getattr(method, "prepare", None)
    if prepare is not None:
        space_defaults.update(prepare(args) or {})
    return PreparedRow(method, args, config_from_args(args), space_defaults)


def build_strategy(variant: BenchVariant, prepared: PreparedRow) -> Any:
    return (variant.build or prepared.method.build)(prepared.args)


def default_parts(module: Any, training_step: Callable[[Any, int], Any] | None = None,
                  ) -> dict[str, Callable[[Any, int], Any]]:
    """The measurable parts of a one-shot module's step.

    ``bench_parts()`` of the module wins; a module with ``arch_step``/``weight_step`` (every
    :class:`BilevelModule`) is split along them; NNI's DARTS-family module is split into its two
    phases exactly as its ``training_step`` runs them.
    """
    parts: dict[str, Callable[[Any, int], Any]] = {"step": training_step or module.training_step}
    custom = getattr(module, "bench_parts", None)
    if callable(custom):
        parts.update(custom())
        return parts
    if callable(getattr(module, "arch_step", None)) and callable(getattr(module, "weight_step", None)):
        def arch(batch: Any, batch_idx: int) -> Any:
            return module.arch_step(batch["val"], batch_idx)

        def weight(batch: Any, batch_idx: int) -> Any:
            loss = module.weight_step(batch["train"], batch_idx)
            for p in module.arch_parameters():
                p.grad = None
            return loss

        parts.update(arch=arch, weight=weight)
        return parts
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
        from nni.nas.oneshot.pytorch.differentiable import DartsLightningModule
    if isinstance(module, DartsLightningModule):
        def nni_arch(batch: Any, batch_idx: int) -> Any:  # phase 1 of NNI's DartsLightningModule.training_step
            optimizer = module.architecture_optimizers()
            module.resample()
            optimizer.zero_grad()
            loss = module.training_module.training_step(batch["val"], 2 * batch_idx)
            loss = loss["loss"] if isinstance(loss, dict) else loss
            module.manual_backward(loss)
            optimizer.step()
            return loss

        def nni_weight(batch: Any, batch_idx: int) -> Any:  # phase 2
            module.resample()
            out = module.training_module.training_step(batch["train"], 2 * batch_idx + 1)
            loss = out["loss"] if isinstance(out, dict) else out
            module.advance_optimization(loss, batch_idx, module.gradient_clip_val)
            return loss

        parts.update(arch=nni_arch, weight=nni_weight)
    return parts


def _summary(times: list[float], cpu: list[float]) -> dict[str, Any]:
    """Wall-clock statistics of a part, and the median / mean process CPU time (robust to load)."""
    if not times:
        return {"median": None, "mean": None, "min": None, "max": None, "n": 0, "cpu_median": None, "cpu_mean": None}
    return {"median": statistics.median(times), "mean": statistics.fmean(times), "min": min(times),
            "max": max(times), "n": len(times), "cpu_median": statistics.median(cpu) if cpu else None,
            "cpu_mean": statistics.fmean(cpu) if cpu else None}


class StepDriver:
    """Replaces a module's ``training_step`` inside ``fit``: runs each part ``warmup + steps``
    times (the whole step first), times it, and stops the trainer after the last part.

    ``prepare()`` runs at the first call, i.e. inside the first training step of the first epoch,
    after the module's own ``on_train_epoch_start`` (so that a stage ``setup`` is not undone by
    it); it returns the parts to measure."""

    def __init__(self, module: Any, prepare: Callable[[], dict[str, Callable[[Any, int], Any]]], warmup: int,
                 steps: int, sync: Callable[[], None], on_phase_end: Callable[[str], None]) -> None:
        self.module, self.prepare, self.sync, self.on_phase_end = module, prepare, sync, on_phase_end
        self.warmup, self.steps = warmup, steps
        self.parts: dict[str, Callable[[Any, int], Any]] | None = None
        self.plan: list[tuple[str, int]] = []
        self.times: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.errors: dict[str, str] = {}
        self.calls = 0

    def _start(self) -> None:
        self.parts = self.prepare()
        order = ["step", *[p for p in PARTS if p != "step" and p in self.parts],
                 *[p for p in self.parts if p not in PARTS]]
        self.plan = [(part, i) for part in order for i in range(self.warmup + self.steps)]
        self.times = {part: [] for part in order}
        self.cpu = {part: [] for part in order}

    @property
    def finished(self) -> bool:
        return self.parts is not None and self.calls >= len(self.plan)

    def __call__(self, batch: Any, batch_idx: int, *args: Any, **kwargs: Any) -> Any:
        if self.parts is None:
            self._start()
        assert self.parts is not None
        if self.calls >= len(self.plan):
            self.module.trainer.should_stop = True
            return None
        part, i = self.plan[self.calls]
        self.calls += 1
        out = None
        if part not in self.errors:
            self.sync()
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                out = self.parts[part](batch, batch_idx)
                self.sync()
                if i >= self.warmup:
                    self.times[part].append(time.perf_counter() - started)
                    self.cpu[part].append(time.process_time() - cpu_started)
            except Exception as e:  # a part that fails is reported, the others still run
                self.errors[part] = f"{type(e).__name__}: {e}"
                if part == "step":
                    self.errors["traceback"] = traceback.format_exc(limit=8)
        if self.calls == len(self.plan) or self.plan[self.calls][0] != part:
            self.on_phase_end(part)
        if self.calls >= len(self.plan):
            self.module.trainer.should_stop = True
        return out


class _Cycle:
    """A virtual dataset: ``length`` items cycling over a few fixed samples (no extra memory)."""

    def __init__(self, x: Any, y: Any, length: int) -> None:
        self.x, self.y, self.length = x, y, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        return self.x[i % len(self.x)], self.y[i % len(self.y)]


def _fixed_loaders(train_set: Any, batch_size: int, num_batches: int, seed: int) -> tuple[Any, Any]:
    """Two loaders (weights, architecture) cycling over 4 fixed batches of the bilevel halves.

    They are long (``num_batches``) so that a strategy that subsets its data still has one epoch
    for every measured call."""
    import torch

    from .data import bilevel_split

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
        from nni.nas.evaluator.pytorch import DataLoader

    generator = torch.Generator().manual_seed(seed)
    loaders = []
    for half in bilevel_split(train_set, 0.5, seed):
        n = min(len(half), 4 * batch_size)
        idx = torch.randperm(len(half), generator=generator)[:n].tolist()
        xs, ys = zip(*(half[i] for i in idx), strict=True)
        dataset = _Cycle(torch.stack(list(xs)), torch.as_tensor(list(ys)), num_batches * batch_size)
        loaders.append(DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=True))
    return loaders[0], loaders[1]


@functools.cache
def cached_datasets(name: str) -> tuple[Any, Any, Any]:
    """The full train and test sets of ``name`` (read once per process: rows run in-process share them)."""
    from .data import build_datasets

    return build_datasets(name, None, None, 0)


def _run_experiment(space: Any, evaluator: Any, strategy: Any, workdir: Path) -> None:
    from .experiment import _quiet_nni

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


def measure(config: CostConfig, variant: BenchVariant) -> dict[str, Any]:
    """Measure one row in this process (the runner calls it in a fresh subprocess per row)."""
    import logging

    import torch
    from pytorch_lightning import Callback

    from .evaluator import build_evaluator, build_trainer
    from .experiment import _quiet_nni

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
    train_loader, val_loader = _fixed_loaders(train_set, config.batch_size, 50 * total_calls, config.seed)
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

    trainer = build_trainer(None, config.e2e_epochs, accelerator=_accelerator(config.device), progress_bar=False,
                            callbacks=[Install()], limit_val_batches=0)
    space = prepared.build_space(info)
    row["space"] = {"ops": list(space.op_names), "num_ops": len(space.op_names), "sharing": space.sharing,
                    "layers": sconfig.layers, "channels": sconfig.channels, "nodes": sconfig.nodes,
                    "batch_size": config.batch_size, "dataset": config.dataset}
    strategy = build_strategy(variant, prepared)
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
    row["times"] = {part: _summary(t, driver.cpu.get(part, [])) for part, t in driver.times.items()}
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

    from .data import bilevel_split
    from .evaluator import build_evaluator, build_trainer
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
    steps = _StepCounter.make()
    trainer = build_trainer(None, config.e2e_epochs, accelerator=_accelerator(config.device), progress_bar=False,
                            callbacks=[steps])
    evaluator = build_evaluator(loaders[0], loaders[1], trainer, learning_rate=sconfig.learning_rate,
                                learning_rate_min=sconfig.learning_rate_min, weight_decay=sconfig.weight_decay,
                                max_epochs=config.e2e_epochs)
    space = prepared.build_space(info)
    strategy = build_strategy(variant, prepared)
    started, cpu_started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="nni-decouple-bench-e2e-") as work:
        _run_experiment(space, evaluator, strategy, Path(work))
        with torch.no_grad():
            strategy.oneshot_module.export()
    return time.perf_counter() - started, time.process_time() - cpu_started, steps.count


class _StepCounter:
    @staticmethod
    def make() -> Any:
        from pytorch_lightning import Callback

        class StepCounter(Callback):
            """Counts the training steps of a search (the end-to-end figure's denominator)."""

            count = 0

            def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
                self.count += 1

        return StepCounter()


def empty_row(variant: BenchVariant) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in ROW_FIELDS}
    row.update(id=variant.id, method=variant.method, variant=variant.name or None, help=variant.help or None,
               reference=variant.reference, targets=dict(variant.targets), times={}, part_errors={}, ratios={},
               ratios_to_reference={}, target_checks={})
    return row


# ----------------------------------------------------------------------------- isolation
def run_job(kind: str, payload: dict[str, Any], isolate: bool, timeout: float, threads: int,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a benchmark job in a fresh Python process (or here, without isolation); errors come
    back as ``{"error": ...}`` so that one failing method does not stop the benchmark."""
    global _progress_sink
    if not isolate:
        _progress_sink = lambda message: log("    " + message)  # noqa: E731
        try:
            return _dispatch(kind, payload)
        except Exception as e:
            return {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"}
        finally:
            _progress_sink = _print_progress
    with tempfile.TemporaryDirectory(prefix="nni-decouple-bench-job-") as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"kind": kind, "payload": payload}))
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   PYTHONWARNINGS="ignore")
        cmd = [sys.executable, "-m", "nni_decouple.bench", str(job), str(result)]
        tail: collections.deque[str] = collections.deque(maxlen=20)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)

        def pump() -> None:  # forward the worker's progress lines, keep the rest for error messages
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip()
                if line.startswith(PROGRESS):
                    log("    " + line[len(PROGRESS):].strip())
                elif line:
                    tail.append(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s (raise --timeout)"}
        finally:
            if proc.poll() is None:  # timeout or interrupt: NNI ignores SIGTERM, so kill
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
        if result.is_file():
            return json.loads(result.read_text())
        return {"error": f"worker exited with status {proc.returncode}:\n" + "\n".join(tail)}


def _die_with_parent() -> None:
    """Linux: the worker gets SIGKILL when the runner dies (NNI's experiment ignores SIGTERM)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _dispatch(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    if kind == "cost":
        config = CostConfig(**payload["config"])
        return measure(config, find_variant(payload["row"]))
    if kind in ("search", "random"):
        from . import bench_quality

        return bench_quality.run_quality_job(kind, payload)
    raise ValueError(f"unknown benchmark job kind {kind!r}")


def _worker(argv: list[str]) -> int:
    """``python -m nni_decouple.bench JOB.json RESULT.json``: one isolated job."""
    warnings.filterwarnings("ignore")
    job = json.loads(Path(argv[0]).read_text())
    try:
        result = _dispatch(job["kind"], job["payload"])
    except Exception as e:
        result = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"}
    Path(argv[1]).write_text(json.dumps(result, default=str))
    return 0


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
    env["load_average_after"] = load_average()
    return {"kind": "cost", "baseline": BASELINE, "config": dataclasses.asdict(config), "environment": env,
            "command": command, "seconds": time.perf_counter() - started, "fields": list(ROW_FIELDS), "rows": rows}


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


def cost_table(result: dict[str, Any], markdown: bool = False) -> str:
    """Each figure with its ratio to NNI's DARTS of the same run."""
    header = ["row", *[c[0] for c in COLUMNS]]
    if any(row.get("cuda_max_allocated_mb") for row in result["rows"]):
        header.append("CUDA max")
    lines = []
    for row in result["rows"]:
        if row.get("error"):
            lines.append([row["id"], "error (below)"] + ["-"] * (len(header) - 2))
            continue
        cells = [row["id"]]
        for _, key, fmt in COLUMNS:
            cells.append(f"{fmt(row.get(key))} ({_fmt_ratio(row['ratios'].get(key))})"
                         if row.get(key) is not None else "-")
        if len(header) > len(COLUMNS) + 1:
            cells.append(f"{_fmt_num(row.get('cuda_max_allocated_mb'), 'MB')} "
                         f"({_fmt_ratio(row['ratios'].get('cuda_max_allocated_mb'))})")
        lines.append(cells)
    table = _render(header, lines, markdown)
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
    return _render(header, lines, markdown)


def _render(header: list[str], lines: list[list[str]], markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *[fmt(line) for line in lines]])


def command_line(argv: list[str] | None = None) -> str:
    return "nni-decouple " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
