"""Runs written before the package layout changed still resume and report (``tests/fixtures/old_run``).

The checkpoint pickles no module path of the package (only tensors, dicts and the run's options),
so moving modules must not break it; these tests hold that for a DOTS run killed after its supernet
was pruned (the checkpoint with the most state: pruned edges, survivors, two optimizers).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nni_decouple.cli import main
from nni_decouple.models.genotype import load_genotype

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_run"
ARGS = ["search", "dots", "--epochs", "3", "--train-limit", "48", "--layers", "3", "--channels", "4",
        "--nodes", "2", "--batch-size", "8", "--no-progress", "--stage-epochs", "0,1,1,1"]


def _epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "arch_history.jsonl").read_text().splitlines() if line]


@pytest.fixture
def killed(tmp_path: Path) -> Path:
    run = tmp_path / "killed"
    shutil.copytree(FIXTURE / "killed", run)
    return run


def test_the_fixture_is_a_killed_run_of_the_old_layout(killed: Path) -> None:
    assert (killed / "checkpoints" / "last.ckpt").is_file() and not (killed / "genotype.json").exists()
    assert json.loads((killed / "config.json").read_text())["method"] == "dots"


def test_an_old_killed_run_resumes_to_the_end(killed: Path) -> None:
    assert main([*ARGS, "--out", str(killed), "--resume"]) == 0
    genotype = load_genotype(killed / "genotype.json")
    assert genotype.meta["method"] == "dots"
    assert _epochs(killed) == _epochs(FIXTURE / "straight")  # one record per epoch (+ the final one), none twice
    reference = load_genotype(FIXTURE / "straight" / "genotype.json")
    assert genotype.to_dict().keys() == reference.to_dict().keys()


def test_an_old_finished_run_reports(tmp_path: Path) -> None:
    run = tmp_path / "straight"
    shutil.copytree(FIXTURE / "straight", run)
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    html = out.read_text()
    assert "dots" in html and len(html) > 10_000
