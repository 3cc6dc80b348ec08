"""What eDARTS added to every search: the data subset (SearchConfig.subset) and the per-epoch
skip-connection log, here with NNI's own DARTS."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

from nni_decouple.runner.experiment import SearchConfig, run_search

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.strategy import DARTS


def test_darts_on_a_subset_logs_skip_connections_every_epoch(tmp_path: Path) -> None:
    # 64 digits, a quarter of them: 16 images, 8 + 8, batch 4 -> 2 steps per epoch.
    config = SearchConfig(method="darts", dataset="digits", epochs=2, layers=3, channels=2, nodes=2,
                          ops="darts_no_none", batch_size=4, train_limit=64, subset=0.25, subset_balanced=True)
    result = run_search(config, DARTS(), tmp_path / "run", progress_bar=False)
    with open(tmp_path / "run" / "logs" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert max(int(r["step"]) for r in rows) == 2 * 2 - 1  # 2 epochs x 2 weight steps (all data: 16 steps)
    per_epoch = [r for r in rows if r.get("skip_connections/normal")]
    assert [int(r["epoch"]) for r in per_epoch] == [0, 1]
    final = json.loads((tmp_path / "run" / "arch_probs.json").read_text())["skip_connections"]
    assert final == result.genotype.count("skip_connect")
    assert {k: int(float(per_epoch[-1][f"skip_connections/{k}"])) for k in final} == final
