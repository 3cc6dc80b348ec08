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


def _printed_code(out: str, header: str) -> str:
    """The indented lines that follow ``header`` in a command's output: the code it tells the user to run."""
    assert header in out, out
    code = []
    for line in out.split(header, 1)[1].splitlines()[1:]:
        if not line.startswith("    "):
            break
        code.append(line[4:])
    assert code, out
    return "\n".join(code)


@pytest.fixture
def printed_code():
    """``printed_code(output, header)``: the code lines a command printed under ``header``, to run as printed."""
    return _printed_code


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """timm's own suite (tests/models/test_timm_suite.py) runs in a subprocess on one torch thread: start it
    as soon as it is among the collected tests, and check its results last, so that it overlaps the rest."""
    suite = [item for item in items if item.path.name == "test_timm_suite.py"
             and "suite" in getattr(item, "fixturenames", ())]
    if suite:
        items[:] = [item for item in items if item not in suite] + suite
        suite[0].module.start_suite()
