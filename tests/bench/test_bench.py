"""The benchmark harness: every registered row lands in the JSON with every field (not the values)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from nni_decouple.bench import cost, harness
from nni_decouple.bench.quality import RUN_FIELDS, SUMMARY_FIELDS, random_genotype, verdict
from nni_decouple.cli import main
from nni_decouple.errors import ConfigError
from nni_decouple.strategies import METHODS, Method, load_all

TINY = ["--dataset", "digits", "--layers", "3", "--channels", "4", "--nodes", "2", "--batch-size", "4",
        "--warmup", "0", "--steps", "1", "--e2e-epochs", "2", "--e2e-train-limit", "16", "--threads", "1"]


def test_cost_json_has_every_field_for_every_registered_row(tmp_path: Path) -> None:
    # the end-to-end search is exercised (isolated) below; here every row's step parts are
    rc = main(["bench", "--no-isolation", "--no-e2e", *TINY, "--out", str(tmp_path)])
    assert rc == 0
    result = json.loads((tmp_path / "cost.json").read_text())
    expected = [row.id for row in harness.discover()]
    assert [row["id"] for row in result["rows"]] == expected
    own = {name for name, method in load_all().items() if method.same_default_as is None}
    assert own <= {row["method"] for row in result["rows"]} and "compose" not in own
    for row in result["rows"]:
        missing = set(cost.ROW_FIELDS) - set(row)
        assert not missing, f"{row['id']} lacks {missing}"
        assert set(row["ratios"]) == set(cost.RATIO_FIELDS), row["id"]
    darts = result["rows"][0]
    assert darts["id"] == harness.BASELINE and darts["error"] is None, darts["error"]
    assert set(darts["times"]) == {"step", "arch", "weight"}
    for key in ("config", "environment", "command", "fields"):
        assert key in result
    assert "load_average_before" in result["environment"] and "load_average_after" in result["environment"]


def test_isolated_row_and_report(tmp_path: Path) -> None:
    """One row through the subprocess worker, then RESULTS.md and the plot from the JSON."""
    rc = main(["bench", "--methods", "darts", "--no-variants", *TINY, "--out", str(tmp_path / "r"),
               "--write-results", "--results-md", str(tmp_path / "RESULTS.md")])
    assert rc == 0
    row = json.loads((tmp_path / "r" / "cost.json").read_text())["rows"][0]
    assert row["error"] is None, row["error"]
    assert row["peak_rss_delta_mb"] is not None and row["memory_probe"]
    assert row["e2e_s"] > 0 and row["e2e_steps"] == 4  # 2 epochs of 8 + 8 images in batches of 4
    text = (tmp_path / "RESULTS.md").read_text()
    assert "Load average" in text and "| darts |" in text
    assert (tmp_path / "r" / "cost_ratios.png").stat().st_size > 1000


def test_quality_json_has_every_field(tmp_path: Path) -> None:
    rc = main(["bench", "--quality", "--no-isolation", "--methods", "darts", "--dataset", "digits",
               "--q-layers", "3", "--q-channels", "2", "--q-nodes", "2", "--q-batch-size", "8",
               "--search-epochs", "1", "--search-train-limit", "32", "--retrain-epochs", "1",
               "--retrain-channels", "2", "--retrain-train-limit", "32", "--seeds", "1", "--random", "2",
               "--out", str(tmp_path), "--write-results", "--results-md", str(tmp_path / "RESULTS.md")])
    assert rc == 0
    result = json.loads((tmp_path / "quality.json").read_text())
    assert set(result["methods"]) == {"darts"}
    for entry in [*result["methods"].values(), result["random"]]:
        for run in entry["runs"]:
            assert not set(RUN_FIELDS) - set(run)
            assert run["error"] is None, run["error"]
        assert not set(SUMMARY_FIELDS) - set(entry["summary"])
    assert len(result["random"]["runs"]) == 2
    assert "Search quality" in (tmp_path / "RESULTS.md").read_text()
    assert (tmp_path / "quality.png").is_file()


@pytest.fixture
def fake_method(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered method whose module declares bench variants."""
    load_all()
    module = types.ModuleType("fake_bench_method")

    def build(args):  # pragma: no cover - never built here
        raise AssertionError

    build.__module__ = module.__name__
    module.bench_variants = lambda name: [
        {"name": "k1", "args": {"arch_lr": 1e-3}},
        {"name": "k4", "reference": "fake[k1]", "targets": {"time_step": 0.6}},
    ]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(METHODS, "fake", Method("fake", "test method", build))
    return "fake"


def test_discover_declared_variants_and_references(fake_method: str) -> None:
    ids = [row.id for row in harness.discover()]
    assert ids[0] == "darts" and {"fake", "fake[k1]", "fake[k4]"} <= set(ids)
    # asking for one variant brings the baseline and its reference row
    assert [row.id for row in harness.discover(["fake[k4]"])] == ["darts", "fake[k1]", "fake[k4]"]
    assert [row.id for row in harness.discover(["fake"], variants=False)] == ["darts", "fake"]
    with pytest.raises(ConfigError, match="unknown method"):
        harness.discover(["nope"])


def test_bad_variant_is_a_config_error(monkeypatch: pytest.MonkeyPatch, fake_method: str) -> None:
    monkeypatch.setattr(sys.modules["fake_bench_method"], "bench_variants", lambda name: [{"name": "x", "bogus": 1}],
                        raising=False)
    with pytest.raises(ConfigError, match="unknown keys"):
        harness.discover(["fake"])


def test_ratios_references_and_targets() -> None:
    rows = []
    for rid, step, mem, ref, targets in (("darts", 2.0, 100.0, None, {}), ("m[k1]", 4.0, 80.0, None, {}),
                                          ("m[k4]", 2.0, 20.0, "m[k1]", {"time_step": 0.6, "peak_rss_delta_mb": 0.2})):
        row = cost.empty_row(harness.BenchVariant(rid.split("[")[0], rid[2:-1] if "[" in rid else "",
                                                 reference=ref, targets=targets))
        row.update(time_step_s=step, peak_rss_delta_mb=mem)
        rows.append(row)
    cost.add_ratios(rows)
    assert rows[1]["ratios"]["time_step_s"] == pytest.approx(2.0)
    assert rows[2]["ratios_to_reference"]["time_step_s"] == pytest.approx(0.5)
    assert rows[2]["target_checks"]["time_step"]["met"] is True
    assert rows[2]["target_checks"]["peak_rss_delta_mb"]["met"] is False  # 0.25 > 0.2


def test_merge_rounds_takes_medians() -> None:
    rounds = [{"error": None, "time_step_s": t, "cpu_step_s": t / 2,
               "times": {"step": {"median": t, "mean": t, "min": t, "max": t, "n": 2, "cpu_median": t / 2,
                                  "cpu_mean": t / 2}}}
              for t in (1.0, 5.0, 2.0)]
    merged = cost.merge_rounds([*rounds, {"error": "boom"}])
    assert merged["time_step_s"] == 2.0 and merged["cpu_step_s"] == 1.0
    assert merged["times"]["step"]["n"] == 6 and merged["times"]["step"]["cpu_median"] == 1.0
    assert len(merged["rounds"]) == 4


def test_random_genotype_and_verdict() -> None:
    g = random_genotype(["none", "skip_connect", "sep_conv_3x3"], nodes=3, seed=1)
    assert g == random_genotype(["none", "skip_connect", "sep_conv_3x3"], nodes=3, seed=1)
    for cell in (g.normal, g.reduce):
        assert all(len(node) == 2 and len({e.source for e in node}) == 2 for node in cell.nodes)
        assert "none" not in cell.ops()
    rand = {"acc_mean": 0.90, "acc_std": 0.01, "n": 6}
    assert verdict({"acc_mean": 0.95}, rand).startswith("beats random")
    assert verdict({"acc_mean": 0.905}, rand).startswith("does not clearly beat random")
    assert verdict({"acc_mean": 0.85}, rand).startswith("does not beat random")
    assert verdict({"acc_mean": 0.90}, rand).startswith("does not beat random")


@pytest.mark.parametrize("args, flag, what", [
    (["--steps", "0"], "--steps", "at least 1"),
    (["--timeout", "0"], "--timeout", "a positive number of seconds"),
    (["--seed", "-3"], "--seed", "a whole number in 0..2**32-1"),
    (["--quality", "--q-layers", "0"], "--q-layers", "at least 1"),
    (["--quality", "--search-epochs", "0"], "--search-epochs", "at least 1"),
    (["--quality", "--retrain-lr", "nan"], "--retrain-lr", "a positive number"),
    (["--all", "--random", "-1"], "--random", "at least 0"),  # refused before the cost benchmark runs
])
def test_bad_options_are_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      args: list[str], flag: str, what: str) -> None:
    from nni_decouple.cli import build_parser, main

    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    assert flag in {option for action in bench._actions for option in action.option_strings}
    out = tmp_path / "results"
    assert main(["bench", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"nni-decouple bench: error: {flag} must be {what}")
    assert not out.exists()
