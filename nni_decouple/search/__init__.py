"""The search axes: op weights, topology, schedule, derivation (see DESIGN.md).

Base classes and registries live in :mod:`.weights`, :mod:`.topology`, :mod:`.schedules` and
:mod:`.derive`; further entries live in their own modules here and register on import, which
:func:`load_all` triggers for every module of this package.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load_all() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
