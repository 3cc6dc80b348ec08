"""timm's own model test suite (``tests/test_models.py`` of timm's source distribution), unchanged, on
every ``nd_*`` preset and on a user export (an MNIST genotype with ``none`` edges, with weights).

``scripts/bootstrap.sh`` fetches the sdist of the pinned timm once into the cache outside the repo
(``$NNI_DECOUPLE_CACHE``, default ``~/.cache/nni-decouple``) and unpacks the test file there; none of
timm's files are in this repository. :mod:`timm_suite_plugin` restricts timm's model lists to the
``nd_*`` names; the tests it deselects (timm's own named models, timm internals) are listed with the
reason in docs/export.md, and this test checks that list is the one the run produced.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import timm
import torch

from nni_decouple.models.network import preset_names

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = Path(os.environ.get("NNI_DECOUPLE_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nni-decouple")
TIMM_TESTS = CACHE / f"timm-{timm.__version__}" / "tests" / "test_models.py"

EXPORT = "nd_timm_suite_mnist"  # the user export timm_suite_plugin makes with `nni-decouple export`
_RUN: dict = {}


def start_suite() -> None:
    """Start timm's suite in a pytest subprocess, once. tests/conftest.py calls this as soon as the session's
    tests are collected, so that the run (one torch thread) overlaps the rest of the suite on the second
    core; the ``suite`` fixture waits for it."""
    if _RUN or not TIMM_TESTS.is_file():
        return
    tmp = Path(tempfile.mkdtemp(prefix="nni-decouple-timm-suite-"))
    (tmp / "pytest.ini").write_text("[pytest]\n")  # none of this repository's or timm's pytest settings
    env = dict(os.environ, NNI_DECOUPLE_HOME=str(tmp / "home"), TIMM_SUITE_REPORT=str(tmp / "report.json"),
               TIMM_SUITE_EXPORT=str(tmp / "export"), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(HERE), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop("GITHUB_ACTIONS", None)  # timm trims its lists on GitHub's runners; run them whole
    # timm's per-test timeouts (pytest-timeout) guard its own CI runners; on a busy 2-core machine they would
    # fail a slow-but-correct TorchScript compile, so they are off here (the suite's budget is the whole run).
    log = (tmp / "log.txt").open("w")
    _RUN.update(tmp=tmp, log=log, started=time.monotonic(), process=subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "timm_suite_plugin", "-c", str(tmp / "pytest.ini"),
         "--rootdir", str(TIMM_TESTS.parent), "-q", "-p", "no:cacheprovider", "-p", "no:timeout", "-W", "ignore",
         "--durations=5", str(TIMM_TESTS)], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT))
    # A session that ends before the check (interrupted, -x) leaves no run behind.
    atexit.register(lambda process=_RUN["process"]: process.poll() is None and process.kill())


def _read_docs_list() -> set[str]:
    """The tests docs/export.md lists as selecting no nd_* model (``- `test_name`: why`` lines)."""
    text = (REPO / "docs" / "export.md").read_text(encoding="utf-8")
    section = text.split("<!-- timm-suite-inapplicable -->")[1].split("<!-- end -->")[0]
    return {line[3:].partition("`")[0] for line in section.splitlines() if line.startswith("- `test_")}


@pytest.fixture(scope="module")
def suite() -> dict:
    if not TIMM_TESTS.is_file():
        pytest.fail(f"{TIMM_TESTS} is missing: run scripts/bootstrap.sh (it fetches timm's sdist into the cache)")
    start_suite()
    process = _RUN["process"]
    try:
        returncode = process.wait(timeout=2400)
    finally:
        if process.poll() is None:
            process.kill()
        _RUN["log"].close()
    tmp = _RUN["tmp"]
    output = (tmp / "log.txt").read_text()
    assert (tmp / "report.json").is_file(), output[-4000:]
    data = json.loads((tmp / "report.json").read_text())
    data.update(returncode=returncode, output=output, summary=output.strip().splitlines()[-1],
                seconds=time.monotonic() - _RUN["started"])
    shutil.rmtree(tmp, ignore_errors=True)
    return data


def test_every_model_passes_timms_own_suite(suite: dict) -> None:
    failed = {k: v for k, v in suite["outcomes"].items() if v != "passed"}
    assert not failed, json.dumps(failed, indent=1)
    assert suite["returncode"] == 0, suite["output"][-4000:]
    print(f"timm's suite: {suite['summary']} ({suite['seconds']:.0f} s from its start, in the background)")


def test_every_model_is_run_by_every_applicable_test(suite: dict) -> None:
    names = [*preset_names(), EXPORT]
    by_test: dict[str, set[str]] = {}
    for node in suite["outcomes"]:
        test, _, params = node.split("::")[-1].partition("[")
        by_test.setdefault(test, set()).update(n for n in names if f"{n}-" in params or f"{n}]" in params)
    # The tests that take timm's model lists and apply to a classification CNN.
    for test in ("test_model_forward", "test_model_backward", "test_model_default_cfgs",
                 "test_model_forward_torchscript", "test_model_forward_features",
                 "test_model_forward_intermediates_features", "test_model_forward_intermediates",
                 "test_prune_intermediate_layers_contract", "test_model_forward_fx", "test_model_backward_fx",
                 "test_model_forward_fx_torchscript"):
        assert by_test.get(test) == set(names), (test, sorted(set(names) - by_test.get(test, set())))
    # The export ships weights: timm's pretrained-loading tests run on it.
    for test in ("test_model_load_pretrained", "test_model_features_pretrained"):
        assert by_test.get(test) == {EXPORT}, test


def test_the_inapplicable_tests_are_the_ones_docs_list(suite: dict) -> None:
    """timm's tests that take its model lists but select no nd_* model are listed, with why, in the docs."""
    selected_none = {test for test, why in suite["deselected"].items() if why.startswith("timm's filters")}
    assert _read_docs_list() == selected_none


@pytest.mark.parametrize("name", preset_names())
def test_timm_factory_kwargs_build_on_device_and_dtype(name: str) -> None:
    model = timm.create_model(name, device="cpu", dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert {b.dtype for b in model.buffers() if b.is_floating_point()} == {torch.float64}
    meta = timm.create_model(name, device="meta")
    assert {t.device.type for t in [*meta.parameters(), *meta.buffers()]} == {"meta"}
