"""Start-up of the CLI: building the parser, ``--help``, ``--version`` and the light commands import no heavy
library, and every option's help shows its real default. Each check runs in a fresh interpreter (the test
session itself has torch loaded), and looks at ``sys.modules``: what was imported, not how long it took."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "pytorch_lightning", "lightning", "lightning_fabric", "nni", "mmengine",
         "mmcv", "mmdet", "mmseg", "matplotlib", "numpy", "scipy", "pandas", "tensorboard")
#: What `genotype` and `show` must never need: the search and OpenMMLab stacks.
SEARCH_STACK = ("pytorch_lightning", "lightning", "lightning_fabric", "nni", "mmengine", "mmcv", "mmdet", "mmseg")


def run_python(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter; it leaves its answer in the variable ``out``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NNI_DECOUPLE_HOME": str(tmp_path / "home"), "MPLBACKEND": "Agg"}
    wrapped = (f"import sys, json, contextlib, io\nHEAVY = {HEAVY!r}\n"
               "def heavy():\n    return sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY))\n"
               f"{code}\nprint('@@' + json.dumps(out))")
    proc = subprocess.run([sys.executable, "-c", wrapped], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.rsplit("@@", 1)[1])


def test_parser_and_every_help_import_nothing_heavy(tmp_path: Path) -> None:
    out = run_python("""
from nni_decouple.cli import build_parser
from nni_decouple.strategies import load_all
parser = build_parser()
after_build = heavy()
helps = {}
commands = [c for c in parser._subparsers._group_actions[0].choices]
argvs = [["--help"], ["--version"]] + [[c, "--help"] for c in commands] + [["search", m, "--help"] for m in load_all()]
for argv in argvs:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        build_parser().parse_args(argv)
    helps[" ".join(argv)] = buf.getvalue()
out = {"after_build": after_build, "after_help": heavy(), "helps": helps, "commands": commands}
""", tmp_path)
    assert out["after_build"] == [], f"building the parser imported {out['after_build']}"
    assert out["after_help"] == [], f"--help imported {out['after_help']}"
    helps = out["helps"]
    assert set(out["commands"]) >= {"search", "train", "export", "transfer", "show", "report", "genotype", "bench"}
    assert helps["--version"].startswith("nni-decouple ")
    # every method's own options are listed, with their defaults; the shared ones too
    def body(text: str) -> str:  # the option lines, without the usage line
        return " ".join(text.split("options:", 1)[1].split())

    dots = body(helps["search dots --help"])
    assert "--stage-epochs" in dots and "--t-max T_MAX initial topology temperature (default: 10.0)" in dots
    for flag, default in (("--epochs EPOCHS", "10"), ("--layers LAYERS", "5"), ("--channels CHANNELS", "8"),
                          ("--batch-size BATCH_SIZE", "64"), ("--lr LEARNING_RATE", "0.025")):
        assert f"{flag}" in dots and f"(default: {default})" in dots.split(flag, 1)[1][:200], flag
    edarts = body(helps["search edarts --help"])
    assert "(default: 0.1)" in edarts.split("--subset FRACTION", 1)[1][:200]  # eDARTS' own subset, not "all"
    assert "(default: 6)" in body(helps["search stretchable --help"]).split("--nodes NODES", 1)[1][:120]
    assert "--preset" in helps["search compose --help"] and "--weights" in helps["search compose --help"]


@pytest.mark.parametrize("command", [["genotype", "{darts}", "--to", "text"], ["genotype", "{darts}", "--to", "arch"],
                                     ["show", "darts_v2", "--out", "cells.png"]])
def test_light_commands_need_no_search_stack(command: list[str], tmp_path: Path) -> None:
    argv = [a.replace("{darts}", str(REPO / "backbones" / "darts_v2.json")) for a in command]
    out = run_python(f"""
from nni_decouple.cli import main
with contextlib.redirect_stdout(io.StringIO()) as buf:
    code = main({argv!r})
out = {{"code": code, "heavy": heavy(), "stdout": buf.getvalue()}}
""", tmp_path)
    assert out["code"] == 0, out
    loaded = set(out["heavy"]) & set(SEARCH_STACK)
    assert not loaded, f"`nni-decouple {' '.join(command)}` imported {sorted(loaded)}"
    if command[0] == "genotype":
        # a data conversion: the op names it checks come from the torch-free op_sets
        assert out["heavy"] == [], out["heavy"]
        assert "sep_conv_3x3" in out["stdout"]


def test_timm_models_register_in_either_import_order(tmp_path: Path) -> None:
    out = run_python("""
import nni_decouple
before = heavy()
import timm
out = {"before": before, "models": timm.list_models("nd_darts_v2*")}
""", tmp_path)
    assert out["before"] == []
    assert "nd_darts_v2" in out["models"]
    out = run_python("""
import timm
import nni_decouple
out = {"models": timm.list_models("nd_dots_c10")}
""", tmp_path)
    assert out["models"] == ["nd_dots_c10"]
