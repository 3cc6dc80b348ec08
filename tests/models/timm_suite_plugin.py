"""A pytest plugin that runs timm's own ``tests/test_models.py``, unchanged, on the ``nd_*`` models only.

Loaded with ``-p timm_suite_plugin`` by :mod:`tests.models.test_timm_suite` in a pytest subprocess.
timm's test file builds its parameter lists at import, with ``from timm import list_models,
list_pretrained``; this plugin replaces both in ``timm`` before the file is imported, so that every
list holds the ``nd_*`` names that timm's own filters select, and nothing else:

- filters (``filter``, ``exclude_filters``, ``pretrained``, ``name_matches_cfg``, tags) are timm's own;
- ``module=`` lists (the model files timm knows to implement ``forward_intermediates`` and the
  ``getter`` feature class) also select the modules that register ``nd_*`` models, since
  :class:`~nni_decouple.models.network.DartsNetwork` implements both;
- tests of timm's own named models (``convnext_atto``, ``test_resnet``, ...) and of timm's internals
  (no ``model_name`` parameter) are deselected; each one is listed, with why, in the JSON report
  written to ``$TIMM_SUITE_REPORT`` (and in docs/export.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import timm
import timm.models
from timm.models import _registry

import nni_decouple  # noqa: F401  registers the presets and the user's exports

PREFIX = "nd_"
_list_models = _registry.list_models
_list_pretrained = _registry.list_pretrained


def _ours(names: Iterable[str]) -> list[str]:
    return [n for n in names if n.startswith(PREFIX)]


def _our_modules() -> list[str]:
    return sorted({_registry._model_to_module[n] for n in _ours(_registry._model_to_module)})


def list_models(filter: Any = "", module: Any = "", pretrained: bool = False, exclude_filters: Any = "",
                name_matches_cfg: bool = False, include_tags: bool | None = None) -> list[str]:
    if module:
        module = ([module] if isinstance(module, str) else list(module)) + _our_modules()
    return _ours(_list_models(filter, module, pretrained, exclude_filters, name_matches_cfg, include_tags))


def list_pretrained(filter: Any = "", exclude_filters: Any = "") -> list[str]:
    return _ours(_list_pretrained(filter, exclude_filters))


#: A user's search result on MNIST, written over several lines, with ``none`` edges in both cells.
USER_GENOTYPE = """\
# searched on MNIST-5k
mnist_cell = Genotype(
    normal=[('sep_conv_3x3', 0), ('none', 1), ('skip_connect', 0), ('dil_conv_3x3', 2),
            ('none', 0), ('max_pool_3x3', 1), ('avg_pool_3x3', 3), ('sep_conv_5x5', 4)],
    normal_concat=[2, 3, 4, 5],
    reduce=[('max_pool_3x3', 0), ('none', 1), ('skip_connect', 2), ('dil_conv_5x5', 1),
            ('none', 0), ('skip_connect', 3), ('sep_conv_3x3', 1), ('none', 4)],
    reduce_concat=[2, 3, 4, 5],
)
"""
EXPORT_NAME = "timm_suite_mnist"


def _export(directory: Path) -> None:
    """Export ``USER_GENOTYPE`` with weights as a user does: a genotype file, a weights file, the CLI."""
    from nni_decouple.cli import main
    from nni_decouple.models.genotype import parse_genotype_text
    from nni_decouple.models.network import DartsNetwork
    from nni_decouple.runner.retrain import save_weights

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mnist_cell.py").write_text(USER_GENOTYPE)
    save_weights(DartsNetwork(parse_genotype_text(USER_GENOTYPE), 8, 5, 10, 1), directory / "model.pth")
    code = main(["export", str(directory / "mnist_cell.py"), "--name", EXPORT_NAME, "--dataset", "mnist5k",
                 "--channels", "8", "--layers", "5", "--weights", str(directory / "model.pth")])
    if code:
        raise RuntimeError(f"nni-decouple export failed with status {code}")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("TIMM_SUITE_EXPORT"):
        _export(Path(os.environ["TIMM_SUITE_EXPORT"]))
    for owner in (timm, timm.models, _registry):
        owner.list_models = list_models  # type: ignore[attr-defined]
        owner.list_pretrained = list_pretrained  # type: ignore[attr-defined]
    config._timm_suite = {"deselected": {}, "outcomes": {}}  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    why = config._timm_suite["deselected"]  # type: ignore[attr-defined]
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("model_name") if callspec is not None else None
        test = item.originalname if isinstance(item, pytest.Function) else item.name
        if isinstance(name, str) and name.startswith(PREFIX):
            keep.append(item)
            continue
        drop.append(item)
        if callspec is None or "model_name" not in callspec.params:
            why.setdefault(test, "tests a timm component or timm's own models, takes no model name")
        elif isinstance(name, str):
            why.setdefault(test, f"names timm's own models ({name}, ...), not a model list")
        else:
            why.setdefault(test, "timm's filters select no nd_* model for it")
    items[:] = keep
    config.hook.pytest_deselected(items=drop)


_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One outcome per test: its first failure or skip (with the message's last line), else passed."""
    if report.nodeid in _OUTCOMES and _OUTCOMES[report.nodeid] != "passed":
        return
    if report.failed or report.skipped:
        last = str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else ""
        _OUTCOMES[report.nodeid] = f"{report.outcome}: {last}"
    elif report.when == "call":
        _OUTCOMES[report.nodeid] = "passed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("TIMM_SUITE_REPORT")
    if path:
        data = {"outcomes": _OUTCOMES, "deselected": session.config._timm_suite["deselected"],  # type: ignore
                "timm": timm.__version__}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
