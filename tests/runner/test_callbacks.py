"""Reliability callbacks: exact resume after SIGKILL, and a clean stop on divergence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nni_decouple.cli import main

TINY = ["--epochs", "3", "--train-limit", "48", "--layers", "3", "--channels", "4", "--nodes", "2",
        "--batch-size", "8", "--no-progress"]
# Per-method flags that make every phase of the method happen within TINY's three epochs.
METHOD_ARGS: dict[str, list[str]] = {
    "dots": ["--stage-epochs", "0,1,1,1"],  # op search, topology warm-up (pruning), topology search
    "edarts": ["--train-limit", "480"],  # its 10 % subset then still has 3 batches per epoch to kill in
}

# The epoch to kill in (default 1). DOTS' is its topology search: the resumed run must rebuild the
# supernet pruned in the epoch before from the checkpoint.
KILL_EPOCH = {"dots": 2}

# Runs the CLI in a child process and SIGKILLs it in the middle of the given epoch (after its
# second training step), as a pre-empted node or an OOM killer would.
KILLER = textwrap.dedent("""
    import os, signal, sys
    import pytorch_lightning as pl
    import nni_decouple.runner.experiment as experiment
    from nni_decouple.cli import main

    kill_epoch = int(os.environ["KILL_EPOCH"])

    class Kill(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == kill_epoch and batch_idx == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    build = experiment.build_trainer
    experiment.build_trainer = lambda *a, callbacks=(), **k: build(*a, callbacks=[*callbacks, Kill()], **k)
    sys.exit(main(sys.argv[1:]))
""")


PLAIN = "import sys\nfrom nni_decouple.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def run_cli(args: list[str], env: dict[str, str], script: str = PLAIN) -> subprocess.CompletedProcess:
    """The CLI in a fresh process with one torch thread: every run compared must see the same thread
    count and a fresh interpreter, or floating-point sums differ in the last bits for that reason alone."""
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def final_state(out: Path) -> tuple[dict, dict]:
    """The derived genotype and the final architecture weights (probabilities) of a finished run."""
    genotype = json.loads((out / "genotype.json").read_text())
    return genotype, json.loads((out / "arch_probs.json").read_text())["probs"]


def final_tensors(out: Path) -> dict[str, object]:
    """Every parameter, buffer and extra state (architecture and network) in the run's last checkpoint."""
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def identical(a: object, b: object) -> bool:
    """Bit-identical tensors, inside any nesting of lists, tuples and dicts (extra states)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def search_methods() -> list[str]:
    """Every method ``nni-decouple search`` offers, so that a new one is covered automatically (but
    ``compose``, whose default search is DARTS': its presets are tested equal to the method classes)."""
    from nni_decouple.strategies import load_all

    return sorted(name for name, method in load_all().items() if method.same_default_as is None)


@pytest.mark.parametrize("method", search_methods())
def test_killed_search_resumes_to_the_same_result(tmp_path, method):
    args = ["search", method, *TINY, *METHOD_ARGS.get(method, [])]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = run_cli([*args, "--out", str(straight)], env={})
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli([*args, "--out", str(killed)], env={"KILL_EPOCH": str(KILL_EPOCH.get(method, 1))}, script=KILLER)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (killed / "checkpoints" / "last.ckpt").is_file() and not (killed / "genotype.json").exists()
    proc = run_cli([*args, "--out", str(killed), "--resume"], env={})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert final_state(killed) == final_state(straight)
    resumed, uninterrupted = final_tensors(killed), final_tensors(straight)
    assert resumed.keys() == uninterrupted.keys()
    differ = [k for k in resumed if not identical(resumed[k], uninterrupted[k])]
    assert not differ, f"{len(differ)} tensors differ after the resume, e.g. {differ[:5]}"


def test_nan_stops_the_search_and_keeps_the_checkpoint(tmp_path, capsys, monkeypatch):
    import pytorch_lightning as pl

    import nni_decouple.runner.experiment as experiment

    class PoisonArch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.current_epoch == 1 and batch_idx == 1:
                with torch.no_grad():
                    pl_module.arch_parameters()[0].fill_(float("nan"))

    build = experiment.build_trainer
    monkeypatch.setattr(experiment, "build_trainer",
                        lambda *a, callbacks=(), **k: build(*a, callbacks=[*callbacks, PoisonArch()], **k))
    out = tmp_path / "run"
    assert main(["search", "darts", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "diverged at epoch 1, step 1" in err and "last.ckpt" in err
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (out / "genotype.json").exists()
