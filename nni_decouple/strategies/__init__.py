"""Search methods by name: each module of this package registers its methods on import.

A :class:`Method` tells the CLI how to add its options, which space it searches (op set,
sharing) and how to build its NNI strategy. Modules here are discovered automatically, so a new
method is one new file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


@dataclass
class Method:
    name: str
    help: str
    build: Callable[[argparse.Namespace], Any]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    #: Defaults for the shared space options (``ops``, ``sharing``, ``nodes``, ...).
    space_defaults: dict[str, Any] = field(default_factory=dict)
    #: Optional ``prepare(args) -> space options``: runs before the search, may set shared options the
    #: method's own options imply (D-DARTS' ``--start resnet18`` fixes ``--layers``), and returns space
    #: options that go on top of ``space_defaults`` (e.g. ``reductions``).
    prepare: Callable[[argparse.Namespace], dict[str, Any]] | None = None
    #: The method whose search this one runs when given no options of its own (``compose`` without axes
    #: is DARTS): benchmarks and the every-method tests measure that search once, under its own name.
    same_default_as: str | None = None


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    load_all()
    if name not in METHODS:
        raise ConfigError(f"unknown search method {name!r}: choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


_loaded = False


def load_all() -> dict[str, Method]:
    """Import every module of this package so that all methods are registered."""
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
    return METHODS
