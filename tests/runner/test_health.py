"""Search health checks on hand-made records: each check trips on the fault it names and stays ok
otherwise; a trip prints one console line."""

from __future__ import annotations

import math

import pytest

from nni_decouple.models.genotype import CellGenotype, Genotype
from nni_decouple.runner.health import HealthThresholds, assess, normalised_entropy, tripped, verdict
from nni_decouple.runner.recorder import ArchitectureRecorder

CONVS = ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


def cell(ops: list[str]) -> CellGenotype:
    """4 nodes, 2 edges each, ops in order."""
    return CellGenotype.from_edges([[(ops[2 * i], 0), (ops[2 * i + 1], 1)] for i in range(4)])


def record(epoch: int, normal: list[str], alpha: float = 0.0, probs: dict | None = None) -> dict:
    genotype = Genotype(normal=cell(normal), reduce=cell(CONVS * 2))
    return {"epoch": epoch, "stage": None, "genotype": genotype.to_dict(),
            "parameters": {"normal/alpha": [[alpha, 0.001]], "reduce/alpha": [[alpha, -0.001]]},
            "probs": probs or {"normal/2_0": {"a": 0.5, "b": 0.5}}}


def test_darts_collapse_trips_with_the_message_the_user_needs(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20, finding 7: the main job ended with 8 avg_pool_3x3 edges in its normal cell and nothing
    told the user. The collapse check trips, and the recorder prints one console line."""
    start = record(0, CONVS * 2)
    collapsed = record(4, ["avg_pool_3x3"] * 8, alpha=0.5)
    health = assess(collapsed, [start], final=True)
    assert health["checks"]["collapse"]["status"] == "warn"
    assert "normal cell: 8/8 edges parameter-free" in health["checks"]["collapse"]["message"]
    assert "the known DARTS collapse" in health["checks"]["collapse"]["message"]
    collapsed["health"] = health
    recorder = ArchitectureRecorder("unused")
    recorder._print_tripped(collapsed)
    recorder._print_tripped(collapsed)  # the same trip is not printed again every epoch
    lines = [line for line in capsys.readouterr().out.splitlines() if "collapse" in line]
    assert len(lines) == 1 and "8/8 edges parameter-free" in lines[0] and "docs/health.md" in lines[0]
    assert "collapse" in verdict(health)


def test_healthy_cells_pass_and_skip_bias_trips() -> None:
    start = record(0, CONVS * 2)
    good = assess(record(3, CONVS * 2, alpha=0.5), [start])
    assert good["checks"]["collapse"]["status"] == "ok"
    assert good["checks"]["movement"]["status"] == "ok"
    skips = assess(record(3, ["skip_connect"] * 3 + CONVS + ["sep_conv_3x3"], alpha=0.5), [start])
    assert skips["checks"]["collapse"]["status"] == "warn"
    assert "skip connections" in skips["checks"]["collapse"]["message"]


def test_movement_below_the_initial_noise_trips() -> None:
    """eDARTS' unscaled epoch update moved every alpha by about 0.01 over a whole search."""
    start = record(0, CONVS * 2)
    still = assess(record(5, CONVS * 2, alpha=0.002), [start])
    assert still["checks"]["movement"]["status"] == "warn"
    assert "not searching yet" in still["checks"]["movement"]["message"]
    assert still["cells"]["normal"]["movement"] == pytest.approx(0.002)
    warmup = assess(record(1, CONVS * 2, alpha=0.0), [start])  # weights only so far: nothing to judge
    assert warmup["checks"]["movement"]["status"] == "n/a" and "warm-up" in warmup["checks"]["movement"]["message"]


def test_gradient_spikes_and_opposing_steps_trip() -> None:
    start = record(0, CONVS * 2)
    spike = {"normal_1": {"steps": 40, "max_ratio": 1.3e5, "min_cosine": -0.79, "opposing": 26}}
    health = assess(record(1, CONVS * 2, alpha=0.5), [start], spike)
    message = health["checks"]["gradient"]["message"]
    assert health["checks"]["gradient"]["status"] == "warn"
    assert "1.3e+05x its cross-entropy gradient" in message and "26 of 40" in message
    calm = {"normal_1": {"steps": 40, "max_ratio": 1.5, "min_cosine": 0.9, "opposing": 0}}
    assert assess(record(1, CONVS * 2, alpha=0.5), [start], calm)["checks"]["gradient"]["status"] == "ok"
    assert assess(record(1, CONVS * 2, alpha=0.5), [start])["checks"]["gradient"]["status"] == "n/a"


def test_stability_counts_edges_changed_over_the_window() -> None:
    history = [record(0, CONVS * 2), record(1, CONVS * 2, 0.1), record(2, CONVS * 2, 0.2)]
    flipped = ["sep_conv_5x5", "sep_conv_3x3"] * 4
    health = assess(record(3, flipped, 0.3), history, thresholds=HealthThresholds(window=2))
    assert health["checks"]["stability"]["status"] == "warn"
    assert health["cells"]["normal"]["changed"] == 8 and health["cells"]["reduce"]["changed"] == 0
    settled = assess(record(3, CONVS * 2, 0.3), history)
    assert settled["checks"]["stability"]["status"] == "ok"


def test_entropy_is_normalised_and_judged_at_the_end() -> None:
    assert normalised_entropy([1, 1, 1, 1]) == pytest.approx(1.0)
    assert normalised_entropy([1, 0, 0, 0]) == pytest.approx(0.0)
    assert normalised_entropy([0.5, 0.25, 0.25]) == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25))
                                                                 / math.log(3))
    start = record(0, CONVS * 2)
    uniform = record(2, CONVS * 2, 0.5, probs={"normal/2_0": {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25},
                                               "normal/topology_2": {"0": 0.5, "1": 0.5}})
    assert assess(uniform, [start])["checks"]["entropy"]["status"] == "n/a"
    final = assess(uniform, [start], final=True)
    assert final["checks"]["entropy"]["status"] == "warn"
    assert final["cells"]["normal"]["topology_entropy"] == pytest.approx(1.0)
    assert [name for name, _ in tripped(final)] == ["entropy"]
