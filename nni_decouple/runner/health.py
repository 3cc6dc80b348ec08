"""Search health: is this search doing what its paper says, or degenerating? (docs/health.md)

Unit tests check each formula; a search can still degenerate as a whole: architecture parameters
that never move (a sparse update too small to matter), a gradient term that spikes or reverses the
cross-entropy descent (D-DARTS' ablation normaliser near zero), a derived cell of pooling and skip
connections only (DARTS' collapse), or a derivation that still flips at the end. After every epoch
:func:`assess` turns one :mod:`.recorder` record (and the one before the first epoch) into, per cell
label or player:

- ``movement``: the largest change of an architecture parameter since the start, and ``noise``,
  the largest entry at the start (the initial noise a search must move beyond);
- ``op_entropy`` / ``topology_entropy``: the mean entropy of every edge's op distribution and every
  node's input distribution, normalised to [0, 1] (1: uniform, undecided; 0: one-hot);
- ``gradient``: over the epoch's architecture steps, the largest ratio of a step's gradient norm to
  the plain cross-entropy gradient norm, the smallest cosine between the two, and how many steps
  pointed against the cross-entropy descent (cosine < 0), from the schedule's
  :class:`~nni_decouple.search.schedules.ArchGradientStats`;
- ``edges``, ``parameter_free``, ``skip``: edges of the derived cell, those on pooling or skip
  connections (no weights), and skip connections alone;
- ``changed``: derived edges that differ from the cell ``window`` epochs earlier.

Each check gets a verdict (``ok``, ``warn`` or ``n/a``) and a message; :class:`HealthThresholds`
holds the bounds, each a named parameter with a documented default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..models.genotype import Genotype
from ..models.ops import is_parametric

CHECKS: tuple[str, ...] = ("movement", "gradient", "collapse", "stability", "entropy")
DOCS = "docs/health.md"


@dataclass(frozen=True)
class HealthThresholds:
    """Bounds of the health checks (defaults and the evidence for them: docs/health.md).

    Attributes:
        min_movement: ``movement`` warns while no architecture parameter of a cell has moved more than
            this (logit units) *and* more than ``noise_factor`` times its initial noise.
        noise_factor: see ``min_movement``.
        max_grad_ratio: ``gradient`` warns when one architecture step's gradient norm exceeds this
            many times its plain cross-entropy gradient norm (a spike).
        max_opposing_share: ``gradient`` warns when more than this share of an epoch's architecture
            steps point against the cross-entropy descent (cosine < 0): a regulariser reverses it.
        max_parameter_free_share: ``collapse`` warns when more than this share of a derived normal
            cell's edges are pooling or skip connections (reduction cells are not judged: DARTS_V2's
            reduction cell is all pooling and skip).
        max_skip_share: ``collapse`` warns when more than this share of a derived cell's edges are skip
            connections (P-DARTS keeps at most 2 of 8).
        window: ``stability`` compares the derived cells with those this many epochs earlier.
        max_changed_share: ``stability`` warns when more than this share of the derived edges changed
            over the last ``window`` epochs (the derivation has not settled).
        max_entropy: ``entropy`` warns at the end when a cell's mean normalised entropy is above this
            (the architecture weights are still almost uniform: nothing was decided).
    """

    min_movement: float = 0.01
    noise_factor: float = 3.0
    max_grad_ratio: float = 100.0
    max_opposing_share: float = 0.1
    max_parameter_free_share: float = 0.5
    max_skip_share: float = 0.25
    window: int = 2
    max_changed_share: float = 0.25
    max_entropy: float = 0.99

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_of(name: str) -> str:
    """``normal/alpha`` -> ``normal``; parameters outside a cell keep their first path part."""
    return name.split("/", 1)[0]


def _flat(value: Any) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)]
    return [x for v in value for x in _flat(v)]


def movement(parameters: Mapping[str, Any], start: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per label: ``movement`` (max |p - p_start|) and ``noise`` (max |p_start|) over its parameters."""
    out: dict[str, dict[str, float]] = {}
    for name, value in parameters.items():
        if name not in start:
            continue
        now, then = _flat(value), _flat(start[name])
        if len(now) != len(then) or not now:
            continue
        entry = out.setdefault(label_of(name), {"movement": 0.0, "noise": 0.0})
        entry["movement"] = max(entry["movement"], max(abs(a - b) for a, b in zip(now, then, strict=True)))
        entry["noise"] = max(entry["noise"], max(abs(b) for b in then))
    return out


def normalised_entropy(weights: Iterable[float]) -> float | None:
    """Entropy of ``weights`` normalised to a distribution, divided by log(n): 1 uniform, 0 one-hot."""
    w = [max(0.0, float(x)) for x in weights]
    total = sum(w)
    if len(w) < 2 or total <= 0:
        return None
    h = -sum(x / total * math.log(x / total) for x in w if x > 0)
    return h / math.log(len(w))


def entropies(probs: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | None]]:
    """Per label: the mean normalised entropy of its edges' op weights and of its nodes' input weights."""
    ops: dict[str, list[float]] = {}
    topo: dict[str, list[float]] = {}
    for key, weights in probs.items():
        if "/" not in key or not isinstance(weights, Mapping):
            continue
        label, rest = key.rsplit("/", 1)
        h = normalised_entropy(weights.values())
        if h is None:
            continue
        (topo if rest.startswith("topology_") else ops).setdefault(label, []).append(h)
    labels = set(ops) | set(topo)
    return {label: {"op_entropy": _mean(ops.get(label)), "topology_entropy": _mean(topo.get(label))}
            for label in labels}


def _mean(values: Sequence[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def cell_edges(genotype: Mapping[str, Any] | None) -> dict[str, set[tuple[int, str, int]]]:
    """Per label, the derived edges as ``(target, op, source)``."""
    if not genotype:
        return {}
    try:
        cells = Genotype.from_dict(genotype).cells()
    except Exception:  # a record written by another version: no cells rather than a crash
        return {}
    return {label: {(target, e.op, e.source) for target, e in cell.edges()}
            for label, cell in cells.items() if cell is not None}


def derived_stats(genotype: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """Per label: derived ``edges``, ``parameter_free`` ones (pooling, skip) and ``skip`` connections."""
    out = {}
    for label, edges in cell_edges(genotype).items():
        ops = [op for _, op, _ in edges]
        out[label] = {"edges": len(ops), "parameter_free": sum(not is_parametric(op) for op in ops),
                      "skip": sum(op == "skip_connect" for op in ops)}
    return out


def changed_edges(now: Mapping[str, Any] | None, before: Mapping[str, Any] | None) -> dict[str, int]:
    """Per label: derived edges of ``now`` that ``before`` does not have."""
    a, b = cell_edges(now), cell_edges(before)
    return {label: len(edges - b.get(label, set())) for label, edges in a.items() if label in b}


def assess(record: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
           gradients: Mapping[str, Mapping[str, float]] | None = None,
           thresholds: HealthThresholds | None = None, final: bool = False) -> dict[str, Any]:
    """The ``health`` entry of ``record`` (one epoch of ``arch_history.jsonl``).

    Args:
        record: the epoch's record (``parameters``, ``probs``, ``genotype``, ``epoch``, ``stage``).
        history: the records before it, oldest first (the first is the start of the search).
        gradients: per player, the epoch's architecture-step statistics (``steps``, ``max_ratio``,
            ``min_cosine``, ``opposing``); ``None`` where the schedule does not measure them.
        thresholds: the bounds; defaults when ``None``.
        final: whether this is the last epoch (the ``entropy`` check judges only the end).
    Returns:
        ``{"cells": {label: measurements}, "checks": {check: {"status", "message"}}, "thresholds"}``.
    """
    t = thresholds or HealthThresholds()
    start = history[0] if history else record
    cells: dict[str, dict[str, Any]] = {}

    def cell(label: str) -> dict[str, Any]:
        return cells.setdefault(label, {})

    for label, values in movement(record.get("parameters", {}), start.get("parameters", {})).items():
        cell(label).update(values)
    for label, values in entropies(record.get("probs", {})).items():
        cell(label).update(values)
    for label, values in derived_stats(record.get("genotype")).items():
        cell(label).update(values)
    earlier = [r for r in history if r.get("epoch", 0) <= record.get("epoch", 0) - t.window]
    if earlier and record.get("epoch", 0) > t.window:
        for label, n in changed_edges(record.get("genotype"), earlier[-1].get("genotype")).items():
            cell(label)["changed"] = n
    for player, stats in (gradients or {}).items():
        cell(player)["gradient"] = dict(stats)

    checks = {name: _check(name, cells, t, record, final) for name in CHECKS}
    return {"cells": cells, "checks": checks, "thresholds": t.to_dict()}


def _ok(message: str = "") -> dict[str, str]:
    return {"status": "ok", "message": message}


def _na(message: str) -> dict[str, str]:
    return {"status": "n/a", "message": message}


def _warn(message: str) -> dict[str, str]:
    return {"status": "warn", "message": message}


def _check(name: str, cells: Mapping[str, Mapping[str, Any]], t: HealthThresholds, record: Mapping[str, Any],
           final: bool) -> dict[str, str]:
    if name == "movement":
        moving = {k: v for k, v in cells.items() if "movement" in v}
        if not moving or record.get("epoch", 0) == 0:
            return _na("no architecture parameters recorded yet")
        if all(v["movement"] == 0.0 for v in moving.values()):
            return _na("no architecture update yet (a warm-up)")
        still = [k for k, v in moving.items()
                 if v["movement"] < max(t.min_movement, t.noise_factor * v.get("noise", 0.0))]
        if still:
            worst = max(moving[k]["movement"] for k in still)
            return _warn(f"{_names(still)}: architecture parameters moved at most {worst:.3g} from their start "
                         f"(bound {t.min_movement:g} and {t.noise_factor:g}x the initial noise): not searching yet")
        return _ok(f"largest move {max(v['movement'] for v in moving.values()):.3g}")
    if name == "gradient":
        graded = {k: v["gradient"] for k, v in cells.items() if v.get("gradient", {}).get("steps")}
        if not graded:
            return _na("no architecture step measured this epoch")
        spikes = {k: g for k, g in graded.items() if g["max_ratio"] > t.max_grad_ratio}
        opposing = {k: g for k, g in graded.items() if g["opposing"] / g["steps"] > t.max_opposing_share}
        problems = []
        if spikes:
            k, g = max(spikes.items(), key=lambda kv: kv[1]["max_ratio"])
            problems.append(f"{_names(spikes)}: an architecture step's gradient was {g['max_ratio']:.3g}x its "
                            f"cross-entropy gradient ({k}; bound {t.max_grad_ratio:g}): a spike")
        if opposing:
            k, g = max(opposing.items(), key=lambda kv: kv[1]["opposing"] / kv[1]["steps"])
            problems.append(f"{_names(opposing)}: {g['opposing']} of {g['steps']} architecture steps pointed against "
                            f"the cross-entropy descent ({k}, cosine down to {g['min_cosine']:.2f}): a regulariser "
                            f"reverses it")
        if problems:
            return _warn("; ".join(problems))
        worst = max(g["max_ratio"] for g in graded.values())
        return _ok(f"largest ratio to the cross-entropy gradient {worst:.3g}")
    if name == "collapse":
        # Normal cells only: reduction cells are pooling by design (DARTS_V2's is 8/8 pooling and skip).
        derived = {k: v for k, v in cells.items() if v.get("edges") and not k.startswith("reduce")}
        if not derived:
            return _na("no derived normal cell")
        problems = []
        for k, v in derived.items():
            if v["parameter_free"] / v["edges"] > t.max_parameter_free_share:
                what = "the known DARTS collapse" if v["parameter_free"] == v["edges"] else "collapsing"
                problems.append(f"{k} cell: {v['parameter_free']}/{v['edges']} edges parameter-free (pooling or "
                                f"skip), {what}")
            elif v["skip"] / v["edges"] > t.max_skip_share:
                problems.append(f"{k} cell: {v['skip']}/{v['edges']} edges are skip connections (DARTS' skip bias)")
        if problems:
            return _warn(_shorten(problems))
        return _ok(f"{sum(v['edges'] - v['parameter_free'] for v in derived.values())} of "
                   f"{sum(v['edges'] for v in derived.values())} derived edges have weights")
    if name == "stability":
        compared = {k: v for k, v in cells.items() if "changed" in v and v.get("edges")}
        if not compared:
            return _na(f"fewer than {t.window + 1} epochs")
        moving = [k for k, v in compared.items() if v["changed"] / v["edges"] > t.max_changed_share]
        if moving:
            n = sum(compared[k]["changed"] for k in moving)
            return _warn(f"{_names(moving)}: {n} derived edges changed over the last {t.window} epochs: the "
                         f"derivation has not settled")
        return _ok(f"{sum(v['changed'] for v in compared.values())} derived edges changed over the last "
                   f"{t.window} epochs")
    # entropy
    if not final:
        return _na("judged at the end of the search")
    measured = {k: max(x for x in (v.get("op_entropy"), v.get("topology_entropy")) if x is not None)
                for k, v in cells.items() if v.get("op_entropy") is not None or v.get("topology_entropy") is not None}
    if not measured:
        return _na("no architecture weights recorded")
    undecided = [k for k, h in measured.items() if h > t.max_entropy]
    if undecided:
        return _warn(f"{_names(undecided)}: architecture weights still almost uniform (normalised entropy "
                     f"{max(measured[k] for k in undecided):.3f} > {t.max_entropy:g}): nothing was decided")
    return _ok(f"normalised entropy at most {max(measured.values()):.3f}")


def _names(labels: Iterable[str]) -> str:
    labels = sorted(labels)
    return ", ".join(labels) if len(labels) <= 3 else f"{', '.join(labels[:3])} and {len(labels) - 3} more"


def _shorten(problems: list[str]) -> str:
    return "; ".join(problems) if len(problems) <= 3 else "; ".join(problems[:3]) + f"; and {len(problems) - 3} more"


def tripped(health: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(check, message)`` of every check that warns."""
    return [(name, c["message"]) for name, c in health.get("checks", {}).items() if c.get("status") == "warn"]


def verdict(health: Mapping[str, Any] | None) -> str:
    """One line: ``ok`` or the checks that warn."""
    if not health:
        return "health: not recorded"
    warned = tripped(health)
    if not warned:
        return "health: ok (" + ", ".join(n for n, c in health["checks"].items() if c["status"] == "ok") + ")"
    return "health: " + " | ".join(f"{n}: {m}" for n, m in warned) + f" (see {DOCS})"
