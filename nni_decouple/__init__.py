"""nni-decouple: decoupled differentiable NAS (DOTS, eDARTS, DNAS, Stretchable Cells, D-DARTS)
as NNI one-shot strategies, with searched architectures exported as timm models.

Importing the package registers its timm models (``nd_*``) and nothing heavier: NNI is imported
only when a search-side name (a space or a strategy) is first used, so exported networks run
where NNI is not installed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it (imported on first access, PEP 562)
_LAZY = {
    "Genotype": "models.genotype",
    "CellGenotype": "models.genotype",
    "load_genotype": "models.genotype",
    "save_genotype": "models.genotype",
    "parse_genotype_text": "models.genotype",
    "NNIDecoupleError": "errors",
    "CellSpace": "spaces.cell",
    "DecoupledStrategy": "strategies.base",
    "SearchConfig": "runner.experiment",
    "run_search": "runner.experiment",
    "build_datasets": "data",
    "build_evaluator": "runner.evaluator",
    "build_trainer": "runner.evaluator",
    # method strategies (present as their issues land)
    "DOTS": "strategies.dots",
    "EDARTS": "strategies.edarts",
    "DNAS": "strategies.dnas",
    "StretchableCells": "strategies.stretchable",
    "DDARTS": "strategies.ddarts",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_timm_models() -> None:
    try:
        importlib.import_module(f"{__name__}.models.timm_models")
    except ModuleNotFoundError as e:  # the timm registration module is optional only while it is written
        if e.name not in (f"{__name__}.models.timm_models", "timm"):
            raise


_register_timm_models()
