"""Shared fixtures. Tests run on the CPU with small data they make or the packages ship."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
os.environ.setdefault("NNI_DECOUPLE_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / "nni-decouple-tests-home"))
# One torch thread for the whole suite: the networks here are tiny (hundreds of small ops per step), a
# second thread only adds synchronisation, and two threads spinning against each other on a shared
# 2-core machine made some tests 5-15x slower (the demo search: 685 s on one thread, 699 s on two).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
#: The architectures the papers released, as published (the source of backbones/*.json).
REFERENCE = REPO / "backbones" / "released_genotypes.txt"


@pytest.fixture(scope="session")
def reference_genotypes_path() -> Path:
    assert REFERENCE.is_file(), f"{REFERENCE} is missing from the repository"
    return REFERENCE


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
