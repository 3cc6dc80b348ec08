"""Record how the architecture evolves during a search: one JSON line per epoch in the run directory.

:class:`ArchitectureRecorder` (a Lightning callback that :func:`~nni_decouple.runner.experiment.run_search`
adds to every search with a run directory) appends to ``arch_history.jsonl``, before the first
epoch and after every epoch, what ``nni-decouple report`` plots:

- ``probs``: the normalised architecture weights exactly as the strategy exports them
  (``export_probs``: per edge ``{label}/{j}_{i}`` the op weights, per node ``{label}/topology_{j}``
  the input-edge weights where the method has a topology), for every cell label, so shared
  (``normal``/``reduce``) and per-cell (``normal_3``...) searches alike;
- ``parameters``: every raw architecture parameter by name, ``{cell label}/{path}`` (``alpha``,
  topology ``beta``, DNAS' per-layer ``beta``/``gamma`` and shared ``alpha``, DOTS'
  ``alpha_choice``...), each tensor once even when cells share it;
- ``stage`` and ``temperatures``: the schedule's stage (DOTS) and every ``temperature``/``tau`` of
  the op-weight and topology modules, where the method has them;
- ``skip_connections`` and ``genotype``: the cells derived at that point; ``topology_preview``
  lists the cells whose topology is not searched yet (DOTS' op stages), whose genotype shows
  the op search's preference by DARTS' rule rather than a searched topology;
- ``stage_plan``: the schedule's plan in words (DOTS), in the first record;
- ``health``: the search-health measurements and verdicts of :mod:`.health` (movement, entropy,
  gradient against the cross-entropy gradient, collapse, stability); a check that trips prints one
  console line (rank 0).

The line of epoch ``e`` describes the architecture after ``e`` epochs (``0``: at initialisation),
and its ``stage``/``temperatures`` are those the epoch ran with. A resumed run appends; readers keep
the last line of every epoch (:func:`read_history`). With TensorBoard (Lightning's
``TensorBoardLogger`` among the trainer's loggers) the same quantities go to the run's event file:
histograms ``arch/<parameter>``, scalars ``schedule/<temperature>`` and ``schedule/stage_index``,
text ``schedule/stage``, scalars ``health/<cell>/<measurement>`` and ``health/<check>`` (1: warns);
the per-edge weights are already there as NNI's ``prob/*`` scalars and the skip connections as
``skip_connections/*``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback

from ..models.genotype import Genotype
from .health import HealthThresholds, assess, tripped

HISTORY_FILE = "arch_history.jsonl"
#: Attributes of op-weight/topology modules that are temperatures (DOTS' T, Gumbel's tau).
TEMPERATURE_ATTRIBUTES = ("temperature", "tau")


def _round(value: Any, digits: int = 6) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v, digits) for v in value]
    return value


def _labelled_modules(module: torch.nn.Module) -> list[tuple[str, str, torch.nn.Module]]:
    """``(path, label, module)`` of every module with a string ``label`` (cells and NNI mutables),
    longest paths first so that a parameter is attributed to its innermost labelled module."""
    found = []
    for path, sub in module.named_modules():
        label = getattr(sub, "label", None)
        if isinstance(label, str) and path:
            found.append((path, label, sub))
    return sorted(found, key=lambda t: -len(t[0]))


def _arch_parameters(pl_module: Any) -> dict[str, torch.Tensor]:
    """Every architecture parameter as ``{cell label}/{name inside the cell}`` (each tensor once)."""
    getter = getattr(pl_module, "arch_parameters", None)
    if not callable(getter):
        return {}
    wanted = {id(p) for p in getter()}
    labelled = _labelled_modules(pl_module)
    out: dict[str, torch.Tensor] = {}
    for name, p in pl_module.named_parameters():  # de-duplicates shared tensors: first path wins
        if id(p) not in wanted:
            continue
        for path, label, _ in labelled:
            if name.startswith(path + "."):
                # NNI's own cells keep ``_arch_alpha`` as a dict keyed by edge label: ``alpha.2_0``.
                rest = name[len(path) + 1:].replace("_arch_", "").replace(f".{label}/", ".")
                name = f"{label}/{rest}"
                break
        out[name] = p.detach()
    return out


def _axis_modules(pl_module: Any) -> list[tuple[str, str, torch.nn.Module]]:
    """``(cell label, kind, module)`` of the distinct op-weight and topology modules."""
    seen: set[int] = set()
    out = []
    for _, label, cell in reversed(_labelled_modules(pl_module)):
        for kind in ("op_weights", "topology"):
            module = getattr(cell, kind, None)
            if isinstance(module, torch.nn.Module) and id(module) not in seen:
                seen.add(id(module))
                out.append((label, kind, module))
    return out


def temperatures(pl_module: Any) -> dict[str, float]:
    """Every ``temperature``/``tau`` of the op-weight and topology modules (and their submodules),
    keyed ``{kind}[.{submodule}].{attribute}``; per label (``{label}:{key}``) only where cells differ."""
    per_key: dict[str, dict[str, float]] = {}
    for label, kind, module in _axis_modules(pl_module):
        for path, sub in module.named_modules():
            for attr in TEMPERATURE_ATTRIBUTES:
                value = getattr(sub, attr, None)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    key = ".".join(p for p in (kind, path, attr) if p)
                    per_key.setdefault(key, {})[label] = float(value)
    out: dict[str, float] = {}
    for key, values in per_key.items():
        if len(set(values.values())) == 1:
            out[key] = next(iter(values.values()))
        else:
            out.update({f"{label}:{key}": v for label, v in values.items()})
    return out


def _in_eval(modules: list[torch.nn.Module]) -> list[tuple[torch.nn.Module, bool]]:
    """Switch the axis modules to eval mode (Gumbel weights are noise-free there); return the modes."""
    modes = [(m, m.training) for m in modules]
    for m in modules:
        m.eval()
    return modes


def snapshot(pl_module: Any, epoch: int) -> dict[str, Any]:
    """One history record of ``pl_module`` (a one-shot strategy's Lightning module)."""
    axis = [m for _, _, m in _axis_modules(pl_module)]
    modes = _in_eval(axis)
    try:
        with torch.no_grad():
            probs = pl_module.export_probs()
            arch = pl_module.export()
    finally:
        for m, training in modes:
            m.train(training)
    genotype = Genotype.from_arch(arch)
    stage = getattr(pl_module, "stage", None) if epoch > 0 else None  # the initial record precedes every stage
    previews = sorted({label for _, label, cell in _labelled_modules(pl_module)
                       if getattr(getattr(cell, "topology", None), "enabled", True) is False})
    record: dict[str, Any] = {
        "epoch": epoch,
        "stage": stage if isinstance(stage, str) else None,
        "temperatures": temperatures(pl_module),
        "skip_connections": genotype.count("skip_connect"),
        "probs": _round({k: dict(v) for k, v in probs.items()}),
        "parameters": {name: _round(p.float().cpu().tolist()) for name, p in _arch_parameters(pl_module).items()},
        "genotype": genotype.to_dict(),
    }
    if previews:
        record["topology_preview"] = previews
    plan = getattr(pl_module, "plan", None) if epoch == 0 else None
    if plan is not None and hasattr(plan, "describe"):
        record["stage_plan"] = plan.describe()
    return record


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/arch_history.jsonl`` by epoch (the last record of an epoch wins, as
    after a resume); empty when the run has none."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    by_epoch: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        by_epoch[int(record["epoch"])] = record
    return [by_epoch[e] for e in sorted(by_epoch)]


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON-lines file ``path`` as one line.

    A run killed mid-write leaves a last line without its newline; it is ended first, or the
    resumed run's first record would be glued to it and lost with it (:func:`read_history` skips
    the cut line).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    with path.open("a+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end > 0:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                line = b"\n" + line
        f.write(line)


class ArchitectureRecorder(Callback):
    """Append a :func:`snapshot` to ``out/arch_history.jsonl`` before training and after every epoch,
    and log it to TensorBoard when the trainer has a TensorBoard logger (rank 0 only)."""

    def __init__(self, out: str | Path, thresholds: HealthThresholds | None = None, console: bool = True) -> None:
        self.path = Path(out) / HISTORY_FILE
        self.thresholds = thresholds or HealthThresholds()
        self.console = console
        self._history: list[dict[str, Any]] | None = None
        self._reported: set[tuple[str, str]] = set()

    def _record(self, trainer: Any, pl_module: Any, epoch: int) -> None:
        record = snapshot(pl_module, epoch)
        stats = getattr(pl_module, "grad_stats", None)
        gradients = stats.pop() if stats is not None and hasattr(stats, "pop") else None
        if not trainer.is_global_zero:
            return
        if self._history is None:  # a resumed run continues the history on disk
            self._history = [r for r in read_history(self.path.parent) if r["epoch"] < epoch]
        final = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        record["health"] = assess(record, self._history, gradients, self.thresholds, final=final)
        self._history.append(record)
        append_record(self.path, record)
        self._tensorboard(trainer, pl_module, record)
        if self.console:
            self._print_tripped(record)

    def _print_tripped(self, record: dict[str, Any]) -> None:
        """One line per check that trips with a new message kind (not again every epoch)."""
        for check, message in tripped(record["health"]):
            key = (check, message.split(":", 1)[0])
            if key in self._reported:
                continue
            self._reported.add(key)
            print(f"health warning after epoch {record['epoch']}: {check}: {message}; see docs/health.md",
                  flush=True)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == 0:  # not on resume: the initial state is recorded already
            self._record(trainer, pl_module, 0)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._record(trainer, pl_module, trainer.current_epoch + 1)

    @staticmethod
    def _tensorboard(trainer: Any, pl_module: Any, record: dict[str, Any]) -> None:
        try:
            from pytorch_lightning.loggers import TensorBoardLogger
        except ImportError:  # pragma: no cover - Lightning always has it
            return
        writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not writers:
            return
        epoch = record["epoch"]
        params = _arch_parameters(pl_module)
        for writer in writers:
            for name, p in params.items():
                if p.numel() > 0 and bool(torch.isfinite(p).all()):
                    writer.add_histogram(f"arch/{name}", p.float().cpu(), epoch)
            for key, value in record["temperatures"].items():
                writer.add_scalar(f"schedule/{key}", value, epoch)
            _health_scalars(writer, record.get("health"), epoch)
            if record["stage"] is not None:
                writer.add_text("schedule/stage", record["stage"], epoch)
                from ..search.schedules.staged import STAGES

                if record["stage"] in STAGES:
                    writer.add_scalar("schedule/stage_index", STAGES.index(record["stage"]), epoch)
            writer.flush()


#: Health measurements written to TensorBoard as ``health/<cell>/<name>``.
HEALTH_SCALARS = ("movement", "op_entropy", "topology_entropy", "parameter_free", "skip", "changed")


def _health_scalars(writer: Any, health: dict[str, Any] | None, epoch: int) -> None:
    if not health:
        return
    for label, cell in health.get("cells", {}).items():
        for name in HEALTH_SCALARS:
            value = cell.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(f"health/{label}/{name}", float(value), epoch)
        gradient = cell.get("gradient") or {}
        if gradient.get("steps"):
            writer.add_scalar(f"health/{label}/grad_ratio_max", float(gradient["max_ratio"]), epoch)
            writer.add_scalar(f"health/{label}/grad_cosine_min", float(gradient["min_cosine"]), epoch)
            writer.add_scalar(f"health/{label}/grad_opposing_share", gradient["opposing"] / gradient["steps"], epoch)
    for check, verdict in health.get("checks", {}).items():
        if verdict.get("status") in ("ok", "warn"):
            writer.add_scalar(f"health/{check}", float(verdict["status"] == "warn"), epoch)
