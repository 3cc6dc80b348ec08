"""What one cost row measures, inside a real Lightning ``fit``: step parts, their times, peak memory.

:class:`StepDriver` replaces a module's ``training_step`` and times each *part* of a step (the
whole step, the architecture step, the weight step; see :func:`default_parts`) on a fixed set of
batches; :class:`MemoryProbe` reads the process' peak RSS around it (Linux ``VmHWM``).
"""
from __future__ import annotations

import os
import resource
import statistics
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Step parts every row reports (``None`` where a module has no such part).
PARTS = ("step", "arch", "weight")



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


def time_summary(times: list[float], cpu: list[float]) -> dict[str, Any]:
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


def fixed_loaders(train_set: Any, batch_size: int, num_batches: int, seed: int) -> tuple[Any, Any]:
    """Two loaders (weights, architecture) cycling over 4 fixed batches of the bilevel halves.

    They are long (``num_batches``) so that a strategy that subsets its data still has one epoch
    for every measured call."""
    import torch

    from ..data import bilevel_split

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





class StepCounter:
    @staticmethod
    def make() -> Any:
        from pytorch_lightning import Callback

        class StepCounter(Callback):
            """Counts the training steps of a search (the end-to-end figure's denominator)."""

            count = 0

            def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
                self.count += 1

        return StepCounter()


