"""DNAS: step time and peak memory of partial channels (K = 4) against full channels (K = 1).

Both searches run on the same global space (every layer its own cell, DARTS' 7 ops without
``none``, 4 nodes) with DNAS' factorised weights, the zero-one loss and skip drop; only the edge's
channel proportion K differs. A *step* is what :class:`~nni_decouple.search.schedules.BilevelModule`
does per batch, written out without Lightning so that nothing else is timed: an architecture step
(forward + backward on a validation batch, zero-one loss, Adam) and a weight step (forward +
backward on a training batch, gradient clipping at 5, SGD with momentum).

Every measurement runs in a fresh subprocess (``--worker``), one thread (the machine is shared, and
one thread keeps the comparison about the work, not about thread scheduling):

* time: median over ``--steps`` steps after ``--warmup`` steps; the K = 1 and K = 4 processes
  alternate for ``--rounds`` rounds and the median of the per-round medians is reported;
* memory, two ways: (1) the peak of glibc's in-use heap bytes (``mallinfo2``: ``uordblks +
  hblkhd``, which is where torch's CPU allocator gets every tensor) sampled after every aten op of
  one step (forward and backward), minus the in-use bytes before that step — the peak activation
  and gradient memory of the step; (2) the growth of the process's peak RSS (``ru_maxrss``) over
  the RSS after the supernet and data were built — coarser (it includes allocator caching), shown
  as a cross-check.

Run (about 10 minutes on 2 busy cores)::

    python benchmarks/dnas_partial.py --out benchmarks/results/dnas_partial.json
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- worker
class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


_LIBC: ctypes.CDLL | None = None


def _heap_in_use() -> int:
    """Bytes glibc's malloc has handed out and not got back (arena chunks + mmapped chunks)."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL("libc.so.6")
        _LIBC.mallinfo2.restype = _MallInfo2
    info = _LIBC.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _build(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch
    from torch import nn

    from nni_decouple.search.cell import DecoupledCell
    from nni_decouple.spaces import CellSpace
    from nni_decouple.strategies.dnas import DNAS

    torch.manual_seed(0)
    space = CellSpace(ops="darts_no_none", channels=args.channels, layers=args.layers, nodes=args.nodes,
                      sharing="layer", num_classes=10, in_chans=3)
    net = DNAS(weights=args.weights, partial_k=args.k).mutate_model(space)
    net.train()
    cells = [m for m in net.modules() if isinstance(m, DecoupledCell)]
    arch = list({id(p): p for cell in cells for p in cell.arch_parameters()}.values())
    arch_ids = {id(p) for p in arch}
    weights = [p for p in net.parameters() if id(p) not in arch_ids]
    axis = list({id(m): m for cell in cells for m in (cell.op_weights, cell.topology)}.values())
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(arch, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    criterion = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    shape = (args.batch, 3, args.size, args.size)
    xt, xv = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    yt, yv = torch.randint(0, 10, (args.batch,), generator=g), torch.randint(0, 10, (args.batch,), generator=g)

    def step() -> None:
        a_opt.zero_grad()
        loss = criterion(net(xv), yv)
        regs = [r for m in axis if hasattr(m, "regularizer") for r in [m.regularizer()] if r is not None]
        if regs:
            loss = loss + torch.stack(regs).sum()
        loss.backward()
        a_opt.step()
        w_opt.zero_grad()
        criterion(net(xt), yt).backward()
        nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()
        for p in arch:
            p.grad = None

    return step, net


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    if args.worker == "time":
        step, _ = _build(args)
        for _ in range(args.warmup):
            step()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return {"step_seconds": times, "median": statistics.median(times)}

    from torch.utils._python_dispatch import TorchDispatchMode

    class PeakHeap(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.peak = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            self.peak = max(self.peak, _heap_in_use())
            return out

    step, _ = _build(args)
    gc.collect()
    rss_built = _rss()
    step()  # warm-up: optimizer state, lazy initialisations
    gc.collect()
    before = _heap_in_use()
    with PeakHeap() as mode:
        step()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_heap_bytes": mode.peak - before, "peak_rss_growth_bytes": peak_rss - rss_built}


# ----------------------------------------------------------------------------- driver
def _run_worker(kind: str, k: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", kind, "--k", str(k)]
    for name in ("layers", "channels", "nodes", "batch", "size", "steps", "warmup", "weights"):
        cmd += [f"--{name}", str(getattr(args, name))]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--weights", default="factorised", help="factorised (DNAS) or unfactorised (baseline)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="alternating K=1 / K=4 timing processes each")
    parser.add_argument("--partial-k", dest="partial", type=int, default=4)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("--worker", choices=["time", "memory"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    ks = (1, args.partial)
    memory = {k: _run_worker("memory", k, args) for k in ks}
    rounds: dict[int, list[float]] = {k: [] for k in ks}
    for r in range(args.rounds):
        for k in (ks if r % 2 == 0 else ks[::-1]):
            rounds[k].append(_run_worker("time", k, args)["median"])
            print(f"round {r}: K={k} median step {rounds[k][-1]:.3f} s", file=sys.stderr)
    step = {k: statistics.median(v) for k, v in rounds.items()}
    full, part = ks
    result = {
        "setting": {key: getattr(args, key) for key in ("layers", "channels", "nodes", "batch", "size", "weights",
                                                         "steps", "warmup", "rounds")}
        | {"ops": "darts_no_none", "sharing": "layer", "threads": 1, "skip_drop": 0.2, "w01": 10.0},
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_average": os.getloadavg()},
        "step_seconds": {f"K={k}": step[k] for k in ks},
        "step_seconds_per_round": {f"K={k}": rounds[k] for k in ks},
        "peak_heap_bytes": {f"K={k}": memory[k]["peak_heap_bytes"] for k in ks},
        "peak_rss_growth_bytes": {f"K={k}": memory[k]["peak_rss_growth_bytes"] for k in ks},
        "time_ratio": step[part] / step[full],
        "heap_ratio": memory[part]["peak_heap_bytes"] / memory[full]["peak_heap_bytes"],
        "rss_ratio": memory[part]["peak_rss_growth_bytes"] / memory[full]["peak_rss_growth_bytes"],
    }
    mb = 1024 ** 2
    print("| K | step (s, median) | peak heap in a step (MiB) | peak RSS growth (MiB) |\n|---|---|---|---|")
    for k in ks:
        print(f"| {k} | {step[k]:.3f} | {memory[k]['peak_heap_bytes'] / mb:.1f} | "
              f"{memory[k]['peak_rss_growth_bytes'] / mb:.1f} |")
    print(f"ratios K={part} / K=1: time {result['time_ratio']:.2f} (target <= 0.6), peak heap "
          f"{result['heap_ratio']:.2f} (target <= 0.5), peak RSS growth {result['rss_ratio']:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
