"""The supernet side of a search: one subpackage per axis, the cell they plug into between them.

- :mod:`.weights`: architecture parameters -> per-edge op weights (``[num_edges, num_ops]``);
- :mod:`.topology`: a node's weights on its input edges (``[num_edges]``), or none;
- :mod:`.schedules`: Lightning modules that decide what updates when;
- :mod:`.derive`: supernet cell -> genotype;
- :mod:`.edges`: what computes one edge (all ops, partial channels, ``none``-free);
- :mod:`.cell` and :mod:`.graph`: the supernet cell every axis plugs into, and its edge list.

Each axis package holds its base class and registry in its ``__init__``; every entry is one module
beside it that registers on import, which :func:`load_all` triggers for the whole package.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load_all() -> None:
    """Import every module of every axis, so that all registries are complete."""
    global _loaded
    if not _loaded:
        for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
            importlib.import_module(info.name)
        _loaded = True
