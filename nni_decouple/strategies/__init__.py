"""Search methods by name: what ``nni-decouple search METHOD`` offers and how it builds the strategy.

A :class:`Method` tells the CLI how to add its options, which space it searches (op set,
sharing) and how to build its NNI strategy. The declarations live in :mod:`.methods` (one light
module per method, importing neither torch nor NNI, so that ``search METHOD --help`` answers at
once); ``build`` names the strategy module's builder (``"nni_decouple.strategies.dots:build"``), which
is imported only when a search is built. A new method is its strategy module here plus its
declaration in ``methods/``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


class Lazy:
    """A method's ``build(args)`` or ``prepare(args)``, imported from ``"module:function"`` when called."""

    def __init__(self, target: str) -> None:
        module, _, attr = target.partition(":")
        if not module or not attr:
            raise ValueError(f"a method's build or prepare must be 'module:function', got {target!r}")
        self.__module__, self.attr = module, attr

    def __call__(self, args: argparse.Namespace) -> Any:
        return getattr(importlib.import_module(self.__module__), self.attr)(args)

    def __repr__(self) -> str:
        return f"Lazy({self.__module__}:{self.attr})"


@dataclass
class Method:
    name: str
    help: str
    #: ``build(args) -> strategy``, or ``"module:function"`` naming it (imported when first called).
    build: Callable[[argparse.Namespace], Any] | str
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    #: Defaults for the shared space options (``ops``, ``sharing``, ``nodes``, ...).
    space_defaults: dict[str, Any] = field(default_factory=dict)
    #: Optional ``prepare(args) -> space options``: runs before the search, may set shared options the
    #: method's own options imply (D-DARTS' ``--start resnet18`` fixes ``--layers``), and returns space
    #: options that go on top of ``space_defaults`` (e.g. ``reductions``).
    prepare: Callable[[argparse.Namespace], dict[str, Any]] | str | None = None
    #: The method whose search this one runs when given no options of its own (``compose`` without axes
    #: is DARTS): benchmarks and the every-method tests measure that search once, under its own name.
    same_default_as: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.build, str):
            self.build = Lazy(self.build)
        if isinstance(self.prepare, str):
            self.prepare = Lazy(self.prepare)


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
    """Import every declaration in :mod:`.methods` so that all methods are registered (no strategy is
    imported: each is imported when its method builds one)."""
    global _loaded
    if not _loaded:
        from . import methods

        for info in pkgutil.iter_modules(methods.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{methods.__name__}.{info.name}")
        _loaded = True
    return METHODS
