"""The compute floor of a supernet: every candidate op's own forward + backward, alone on its input.

For the benchmark's space (cells, channels, nodes, op set, batch, input size) this builds the
space, records the input shape of every cell, and times, for every edge of every cell and every
candidate op of the edge, that op alone: ``y = op(x); y.backward(g)`` on a fresh input of the
edge's shape (which needs its gradient, as in the supernet). The floor is the sum over all of them,
each op in the faster of the two memory formats (default and channels-last). It leaves out
everything that is not a candidate op: the stem, the cells' preprocessors, weighting and summing
the ops, the classifier, the loss, the optimizers, and ``none`` (no computation). One bilevel
search step runs the supernet forward and backward twice (architecture and weight step), so a
perfect bilevel step would be about twice the floor.

Identical (op, shape, stride) calls are timed once and counted as often as they occur.
"""
from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .harness import cached_datasets, progress, register_job, set_threads


def floor_calls(ops: list[str], layers: int, channels: int, nodes: int, batch_size: int, dataset: str,
                sharing: str = "type") -> Counter:
    """``{(op, (N, C, H, W), stride): count}`` over every edge and candidate op of the supernet."""
    import torch

    from ..search.graph import CellGraph
    from ..spaces import CellSpace

    _, _, info = cached_datasets(dataset)
    space = CellSpace(ops=ops, channels=channels, layers=layers, nodes=nodes, num_classes=info.num_classes,
                      in_chans=info.in_chans, sharing=sharing, stem=info.stem)  # type: ignore[arg-type]
    shapes: list[tuple[Any, tuple[int, ...]]] = []
    hooks = [cell.preprocessor.register_forward_hook(
        lambda module, args, out, spec=cell.spec: shapes.append((spec, tuple(out[0].shape))))
        for cell in space.cells]
    image, _ = cached_datasets(dataset)[0][0]  # the benchmark's real input size
    with torch.no_grad():
        space.eval()(torch.zeros(1, *image.shape))
    for hook in hooks:
        hook.remove()
    calls: Counter = Counter()
    for spec, (_, c, h, w) in shapes:
        graph = CellGraph(spec.num_nodes)
        for source, _ in graph.edges:
            stride = spec.stride(source)
            # Intermediate nodes have the cell's output resolution (the strided ops' ceil(H / 2)).
            hs, ws = (h, w) if source < 2 or not spec.reduction else ((h - 1) // 2 + 1, (w - 1) // 2 + 1)
            for name in spec.op_names:
                if name != "none":
                    calls[(name, (batch_size, c, hs, ws), stride, spec.affine)] += 1
    return calls


def time_op(name: str, shape: tuple[int, ...], stride: int, affine: bool, channels_last: bool, warmup: int,
            steps: int, device: str, sync: Callable[[], None]) -> float:
    """Median seconds of one forward + backward of op ``name`` alone on a ``shape`` input."""
    import torch

    from ..models.ops import create_op

    op = create_op(name, shape[1], stride, affine).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    op.to(memory_format=fmt)
    x = torch.randn(shape, device=device).contiguous(memory_format=fmt).requires_grad_()
    with torch.no_grad():
        g = torch.randn_like(op(x))
    times = []
    for i in range(warmup + steps):
        x.grad = None
        sync()
        started = time.perf_counter()
        op(x).backward(g)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_floor(ops: list[str], layers: int, channels: int, nodes: int, batch_size: int, dataset: str,
                  threads: int = 1, device: str = "cpu", warmup: int = 1, steps: int = 3) -> dict[str, Any]:
    """The compute floor (module docstring): total seconds, and per op name its share."""
    import torch

    set_threads(threads)
    torch.manual_seed(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    calls = floor_calls(ops, layers, channels, nodes, batch_size, dataset)
    per_op: dict[str, float] = {}
    formats: Counter = Counter()
    total = 0.0
    for (name, shape, stride, affine), count in sorted(calls.items()):
        default = time_op(name, shape, stride, affine, False, warmup, steps, device, sync)
        last = time_op(name, shape, stride, affine, True, warmup, steps, device, sync)
        formats["channels_last" if last < default else "default"] += count
        seconds = min(default, last) * count
        per_op[name] = per_op.get(name, 0.0) + seconds
        total += seconds
    progress(f"compute floor: {total:.3f} s over {sum(calls.values())} op calls ({len(calls)} distinct)")
    return {"floor_s": total, "per_op_s": per_op, "op_calls": sum(calls.values()), "distinct_calls": len(calls),
            "faster_format": dict(formats), "ops": list(ops)}


@register_job("floor")
def _floor_job(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return measure_floor(**payload)
