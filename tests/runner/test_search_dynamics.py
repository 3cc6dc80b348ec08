"""Search dynamics: a short real search per method and main variant on MNIST-5k, checked as a whole.

Unit tests check each formula; these check that a search does what its paper intends, through the
search-health record every search writes (``arch_history.jsonl``, :mod:`nni_decouple.runner.health`):

- the architecture moves beyond its initial noise;
- no architecture step's gradient spikes beyond a bound relative to its plain cross-entropy gradient;
- no (or hardly any) architecture step whose regularisers alone reverse the cross-entropy descent;
- stages and temperatures follow the plan (DOTS).

Tiny networks (3 cells, 4 channels, 2 nodes), 240 MNIST images, 3-4 epochs: each case is a few
seconds on one thread. The architecture learning rate is raised to 3e-3 (D-DARTS' own) so that a
dozen steps move it measurably; the invariants do not depend on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nni_decouple.cli import main
from nni_decouple.runner.health import HealthThresholds
from nni_decouple.runner.recorder import read_history

TINY = ["--dataset", "mnist5k", "--train-limit", "240", "--batch-size", "30", "--layers", "3", "--channels", "4",
        "--nodes", "2", "--arch-lr", "3e-3", "--no-progress", "--seed", "0"]
#: Bounds the dynamics must keep (the health defaults; docs/health.md).
BOUNDS = HealthThresholds()

CASES = {
    "darts": ["darts", "--epochs", "3"],
    "gdas": ["gdarts", "--epochs", "3"],
    "dots-grouped": ["dots", "--epochs", "4"],
    "dots-darts": ["dots", "--epochs", "4", "--op-search", "darts"],
    "dots-gdas": ["dots", "--epochs", "4", "--op-search", "gdas"],
    "edarts": ["edarts", "--epochs", "3", "--subset", "1.0"],
    "dnas": ["dnas", "--epochs", "3"],
    "stretchable-output-any": ["stretchable", "--epochs", "3", "--nodes", "3"],
    "stretchable-output-two": ["stretchable", "--epochs", "3", "--nodes", "3", "--edges", "two"],
    "stretchable-input-any": ["stretchable", "--epochs", "3", "--nodes", "3", "--topology", "input"],
    "ddarts-exact": ["ddarts", "--epochs", "3", "--layers", "4"],
    "ddarts-fast": ["ddarts", "--epochs", "3", "--layers", "4", "--ablation", "fast"],
    "compose-global-stretchable": ["compose", "--epochs", "3", "--space", "global", "--weights", "factorised",
                                   "--topology", "output_any", "--schedule", "milenas", "--derive", "stretchable",
                                   "--ops", "darts_no_none"],
}
#: NNI's own strategies do not measure their architecture gradients (no regulariser to compare with).
NO_GRADIENTS = {"darts", "gdas"}


_RUNS: dict[str, tuple[Path, list[dict], str]] = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dynamics")


def search(root: Path, name: str, capsys: pytest.CaptureFixture[str] | None = None) -> tuple[Path, list[dict], str]:
    """Run case ``name`` once per module (the report test reuses the run); returns the run directory,
    its history and what the search printed."""
    if name not in _RUNS or not _RUNS[name][0].is_dir():
        out = root / name
        argv = ["search", *CASES[name][:1], *TINY, *CASES[name][1:], "--out", str(out), "--force"]
        assert main(argv) == 0
        printed = capsys.readouterr().out if capsys is not None else ""
        _RUNS[name] = (out, read_history(out), printed)
    return _RUNS[name]


def moved(history: list[dict]) -> dict[str, tuple[float, float]]:
    """Per cell label: (movement at the end, initial noise)."""
    cells = history[-1]["health"]["cells"]
    return {label: (c["movement"], c["noise"]) for label, c in cells.items() if "movement" in c}


def gradient_stats(history: list[dict]) -> list[dict]:
    return [c["gradient"] for r in history for c in r["health"]["cells"].values() if c.get("gradient")]


@pytest.mark.parametrize("name", list(CASES))
def test_search_keeps_its_health_invariants(root: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out, history, printed = search(root, name, capsys)
    assert "health:" in printed  # the verdict line of the search summary
    assert all("health" in r for r in history)

    # The architecture moves beyond its initial noise, in every cell (player) it searches.
    movement = moved(history)
    assert movement, name
    for label, (distance, noise) in movement.items():
        assert distance > 2 * noise and distance > 1e-3, (name, label, distance, noise)

    # No spike, and no step whose regularisers alone reverse the cross-entropy descent.
    stats = gradient_stats(history)
    if name in NO_GRADIENTS:
        assert not stats
    else:
        assert stats, name
        assert max(s["max_ratio"] for s in stats) <= BOUNDS.max_grad_ratio, name
        steps, opposing = sum(s["steps"] for s in stats), sum(s["opposing"] for s in stats)
        assert opposing <= BOUNDS.max_opposing_share * steps, (name, opposing, steps)

    if name.startswith("dots"):
        _check_dots_plan(history, printed)


def _check_dots_plan(history: list[dict], printed: str) -> None:
    """Stages follow the plan, the short topology search anneals to T_min, op-stage cells are previews."""
    plan = ("stage plan (4 epochs): op warm-up epoch 1, op search epoch 2, topology warm-up epoch 3, topology "
            "search epoch 4")
    assert history[0]["stage_plan"].startswith(plan)
    assert printed.count("stage plan") == 1 and plan in printed
    assert [r["stage"] for r in history[1:]] == ["op_warmup", "op_search", "topology_warmup", "topology_search"]
    temperature = [r["temperatures"]["topology.temperature"] for r in history[1:]]
    assert temperature[:3] == [1.0, 1.0, 1.0]
    assert temperature[3] == pytest.approx(0.02)  # annealed within the one topology-search epoch
    for record in history[:3]:  # before the topology stages: a DARTS-rule preview, marked as such
        assert record["topology_preview"] == ["normal", "reduce"]
    assert "topology_preview" not in history[-1]


@pytest.mark.parametrize("name", ["ddarts-exact", "edarts", "dots-grouped"])
def test_report_and_tensorboard_show_the_health(root: Path, name: str) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, history, _ = search(root, name)
    assert main(["report", str(out), "--no-size"]) == 0
    page = (out / "report.html").read_text()
    section = page.split('<section id="health">', 1)[1].split("</section>", 1)[0]
    for check in ("movement", "gradient", "collapse", "stability", "entropy"):
        assert f"<td>{check}</td>" in section
    assert "grad / CE grad (max)" in section and "Thresholds:" in section
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    label = next(iter(history[-1]["health"]["cells"]))
    assert f"health/{label}/movement" in scalars and "health/collapse" in scalars
    assert any(tag.endswith("/grad_ratio_max") for tag in scalars)
    assert len(events.Scalars(f"health/{label}/movement")) == len(history)
    json.dumps(history[-1]["health"])  # plain JSON
