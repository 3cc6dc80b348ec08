"""``benchmarks/gpu.sh --device cpu --tiny``: the GPU benchmark's dry run on the CPU runs every code
path of it (cost with the fast path on and off, AMP on and off, the compute floor, quality, the report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_script_dry_run_on_the_cpu(tmp_path):
    out, md = tmp_path / "results", tmp_path / "RESULTS.md"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), "--device", "cpu", "--tiny", "--out", str(out),
                           "--results-md", str(md)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = md.read_text()
    for tag in ("gpu-fast", "gpu-plain", "gpu-amp", "gpu-amp-plain"):
        assert f"## Search cost ({tag})" in text
        result = json.loads((out / f"cost-{tag}.json").read_text())
        rows = {row["id"]: row for row in result["rows"]}
        assert not any(row.get("error") for row in rows.values()), [row["error"] for row in rows.values()]
        assert rows["darts"]["fast"] is False and rows["darts"]["precision"] == "32-true"
        assert rows["darts[decoupled]"]["fast"] is (not tag.endswith("plain"))
        assert rows["darts[decoupled]"]["precision"] == ("bf16-mixed" if "amp" in tag else "32-true")
    floors = json.loads((out / "cost-gpu-fast.json").read_text())["floors"]
    assert floors and all(f["floor_s"] > 0 for f in floors)
    assert "step / floor" in text and "## Search quality on mnist5k" in text


def test_gpu_script_refuses_an_unknown_option():
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), "--gpu"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown option --gpu" in proc.stderr
