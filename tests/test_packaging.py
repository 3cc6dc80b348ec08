"""The wheel ships every sub-package and the released backbones (``pyproject.toml`` lists packages by hand,
because ``packages.find`` cannot see ``nni_decouple.backbones``, which lives in the top-level ``backbones/``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_subpackage_and_the_backbones() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "nni_decouple").rglob("__init__.py")}
    assert on_disk | {"nni_decouple.backbones"} == set(config["packages"])
    assert config["package-dir"]["nni_decouple.backbones"] == "backbones"
    assert set(config["package-data"]["nni_decouple.backbones"]) >= {"*.json", "*.md"}
    assert (REPO / "backbones" / "__init__.py").is_file()
