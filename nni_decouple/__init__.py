"""nni-decouple: decoupled differentiable NAS (DOTS, eDARTS, DNAS, Stretchable Cells, D-DARTS)
as NNI one-shot strategies, with searched architectures exported as timm models.

Importing the package imports nothing heavy. Its timm models (``nd_*``) are registered when timm
is imported (at once if it already is, else right after ``import timm`` finishes, whatever the
order of the two imports), so ``import nni_decouple, timm`` gives ``timm.create_model("nd_...")``
while a command that never needs timm (``nni-decouple --help``, ``genotype``) does not pay for
torch and timm. NNI is imported only when a search-side name (a space or a strategy) is first
used, so exported networks run where NNI is not installed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
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
    importlib.import_module(f"{__name__}.models.timm_models")


class _RegisterWhenTimmIsImported(importlib.abc.MetaPathFinder):
    """An import hook: lets the normal finders find ``timm``, then registers the models right after timm's
    own ``__init__`` has run (Python has no post-import hooks of its own). When our own network module is
    what imports timm (it is then half-initialised), the registration waits until that module is done."""

    WATCHED = ("timm", f"{__name__}.models.network")

    def __init__(self) -> None:
        self.pending = False

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.WATCHED:
            return None
        for finder in sys.meta_path:  # the spec the other finders would give
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_original = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            exec_original(module)
            network = sys.modules.get(self.WATCHED[1])
            if fullname == "timm" and network is not None and getattr(network.__spec__, "_initializing", False):
                self.pending = True  # registered when the network module has finished
            elif fullname == "timm" or self.pending:
                self.done()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

    def done(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self.pending = False
        _register_timm_models()


if "timm" in sys.modules:
    _register_timm_models()
elif not any(isinstance(finder, _RegisterWhenTimmIsImported) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenTimmIsImported())
