"""What the benchmarks share: the methods to measure, isolated worker processes, the machine.

A *row* is a method with its CLI defaults or a variant its strategy module declares
(:func:`discover`); a *job* is one measurement of a row (cost) or one search or random
architecture (quality), run in a fresh Python process so that memory does not carry over and a
failing method does not stop the benchmark (:func:`run_job`). Job kinds register with
:func:`register_job`; ``python -m nni_decouple.bench JOB RESULT`` runs one.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import importlib
import json
import os
import platform
import shlex
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

from ..errors import ConfigError

#: The method every ratio is taken against: NNI's own DARTS, unchanged.
BASELINE = "darts"


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
    name = getattr(method.build, "__module__", "")
    module = sys.modules.get(name) or (importlib.import_module(name) if name else None)
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
    (``dots[topology]``); ``variants=False`` leaves out the variants a method name brings, not the
    row ids asked for by name."""
    from ..strategies import load_all

    registry = load_all()
    all_rows: list[BenchVariant] = []
    for name in sorted(registry, key=lambda n: (n != BASELINE, n)):
        if registry[name].same_default_as is not None:  # its default search is another row's
            continue
        all_rows.append(BenchVariant(name))
        all_rows.extend(declared_variants(registry[name]))
    if methods is None:
        return [row for row in all_rows if variants or not row.name]
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



# ----------------------------------------------------------------------------- building a row
def method_namespace(method: Any, config: Any, overrides: dict[str, Any] | None = None) -> argparse.Namespace:
    """The CLI namespace of ``nni-decouple search METHOD`` with its defaults, the benchmark's
    space and batch, and a variant's overrides: what ``Method.build`` expects."""
    from ..commands.search import add_common_arguments

    parser = argparse.ArgumentParser(add_help=False)
    add_common_arguments(parser)
    method.add_arguments(parser)
    args = parser.parse_args([])
    args.method = method.name
    for name in ("layers", "channels", "nodes", "batch_size", "seed", "dataset", "device"):
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
        from ..runner.experiment import build_space

        return build_space(self.search, info.num_classes, info.in_chans, info.stem, self.space_defaults)


def prepare_row(variant: BenchVariant, config: Any, epochs: int, train_limit: int | None = None) -> PreparedRow:
    """Mirror ``nni-decouple search``: the method's CLI defaults, the benchmark's space and batch,
    the variant's options and space, then the method's ``prepare`` hook."""
    from ..commands.search import config_from_args
    from ..strategies import get_method

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



@functools.cache
def cached_datasets(name: str) -> tuple[Any, Any, Any]:
    """The full train and test sets of ``name`` (read once per process: rows run in-process share them)."""
    from ..data import build_datasets

    return build_datasets(name, None, None, 0)



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


#: Job kinds -> ``run(payload) -> result``; :mod:`.cost` and :mod:`.quality` register theirs on import.
JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def register_job(*kinds: str) -> Callable[[Callable[[str, dict[str, Any]], dict[str, Any]]], Any]:
    """Register ``fn(kind, payload) -> result`` as the runner of each job kind in ``kinds``."""
    def _register(fn: Callable[[str, dict[str, Any]], dict[str, Any]]) -> Any:
        for kind in kinds:
            JOBS[kind] = functools.partial(fn, kind)
        return fn

    return _register


def _dispatch(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    if kind not in JOBS:
        raise ValueError(f"unknown benchmark job kind {kind!r}")
    return JOBS[kind](payload)


def worker(argv: list[str]) -> int:
    """``python -m nni_decouple.bench JOB.json RESULT.json``: one isolated job (:mod:`.__main__`)."""
    warnings.filterwarnings("ignore")
    job = json.loads(Path(argv[0]).read_text())
    try:
        result = _dispatch(job["kind"], job["payload"])
    except Exception as e:
        result = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"}
    Path(argv[1]).write_text(json.dumps(result, default=str))
    return 0


def render_table(header: list[str], lines: list[list[str]], markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *[fmt(line) for line in lines]])


def command_line(argv: list[str] | None = None) -> str:
    return "nni-decouple " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

