"""Several processes: ``--devices 2`` (DDP, gloo on the CPU) ends with identical architecture parameters
and genotypes on both ranks, each rank reading its own shard of the data, and only rank 0 writes files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nni_decouple.cli import main

TINY = ["--devices", "2", "--epochs", "2", "--train-limit", "64", "--layers", "3", "--channels", "4", "--nodes", "2",
        "--batch-size", "8", "--no-progress"]

# Lightning's DDP launcher starts rank 1 by running this script file again (``python -c`` cannot be
# re-run), so the driver is a file. Each rank dumps what it ended with; the dump is the test's, not
# the package's: the package itself writes from rank 0 only.
DRIVER = textwrap.dedent("""
    import os, sys
    import pytorch_lightning as pl
    import torch
    import nni_decouple.runner.experiment as experiment
    from nni_decouple.cli import main

    rank = int(os.environ.get("LOCAL_RANK", "0"))
    seen = {}

    class FirstBatch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if "train" not in seen:
                seen["train"] = batch["train"][0].clone()

    build_trainer, run_search = experiment.build_trainer, experiment.run_search
    experiment.build_trainer = lambda *a, callbacks=(), **k: build_trainer(*a, callbacks=[*callbacks, FirstBatch()],
                                                                           **k)

    def dumping_run_search(config, strategy, *args, **kwargs):
        result = run_search(config, strategy, *args, **kwargs)
        torch.save({"arch_parameters": [p.detach().clone() for p in strategy.oneshot_module.arch_parameters()],
                    "genotype": result.genotype.to_dict(), "first_batch": seen["train"],
                    "world_size": torch.distributed.get_world_size()},
                   os.path.join(os.environ["RANK_DUMP"], f"rank{rank}.pt"))
        return result

    experiment.run_search = dumping_run_search
    sys.exit(main(sys.argv[1:]))
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# NNI's DARTS; a decoupled topology (Stretchable Cells' output codes); per-cell optimizers (D-DARTS).
# GDAS, DNAS and eDARTS (lazy, sharded validation batches) were checked the same way by hand.
@pytest.mark.parametrize("method", ["darts", "stretchable", "ddarts"])
def test_two_processes_end_identical_and_only_rank_zero_writes(tmp_path: Path, method: str) -> None:
    driver, dump, out = tmp_path / "driver.py", tmp_path / "dump", tmp_path / "run"
    driver.write_text(DRIVER)
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "RANK_DUMP": str(dump)}
    proc = subprocess.run([sys.executable, str(driver), "search", method, *TINY, "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [torch.load(dump / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # each rank trained on its own shard, so only the all-reduce can keep them equal
    assert not torch.equal(ranks[0]["first_batch"], ranks[1]["first_batch"])
    params = [r["arch_parameters"] for r in ranks]
    assert len(params[0]) == len(params[1]) > 0
    assert all(torch.equal(a, b) for a, b in zip(*params, strict=True))
    assert ranks[0]["genotype"] == ranks[1]["genotype"]

    # rank 0 wrote the run, once; rank 1 wrote nothing of its own and printed no second summary
    assert proc.stdout.count("written:") == 1
    assert not [p for p in out.rglob("*") if "rank1" in p.name or "rank_1" in p.name]
    assert [p.name for p in (out / "checkpoints").glob("*.ckpt")] == ["last.ckpt"]  # one file per save
    history = (out / "arch_history.jsonl").read_text().splitlines()
    assert len(history) == 3  # the start and two epochs, recorded by rank 0 alone


def test_a_schedule_that_cannot_run_in_several_processes_is_refused_before_starting(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["search", "dots", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "prunes the supernet" in err and "--devices 1" in err and len(err.splitlines()) == 1
    assert not out.exists()  # refused before the run directory (or a second process) was made
