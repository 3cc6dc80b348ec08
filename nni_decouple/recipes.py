"""Search recipes: YAML files of CLI option values, with mmengine-style ``_base_`` inheritance.

A recipe sets the defaults of ``nni-decouple search METHOD --recipe FILE``; flags given on the
command line still win. Keys are option names (``batch_size`` or ``batch-size``); ``_base_`` names
one file or a list, relative to the recipe, whose values this file overrides.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def load_recipe(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {str(path)!r} does not exist: check the path (recipes ship in configs/search/)")
    if path.resolve() in _seen:
        raise ConfigError(f"recipe {str(path)!r} inherits from itself through _base_")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {str(path)!r} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {str(path)!r} must be a mapping of option: value")
    bases = data.pop("_base_", [])
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        merged.update(load_recipe(path.parent / base, (*_seen, path.resolve())))
    merged.update({str(k).replace("-", "_"): v for k, v in data.items()})
    return merged


def apply_recipe(parser: argparse.ArgumentParser, recipe: dict[str, Any], method: str, where: str) -> None:
    """Set ``recipe`` as the parser's defaults, refusing keys the method does not have."""
    recipe = dict(recipe)
    named = recipe.pop("method", method)
    if named != method:
        raise ConfigError(f"recipe {where!r} is for method {named!r}, not {method!r}: "
                          f"run 'nni-decouple search {named} --recipe {where}'")
    dests = {a.dest for a in parser._actions}
    unknown = sorted(set(recipe) - dests)
    if unknown:
        raise ConfigError(f"recipe {where!r} sets unknown option(s) {', '.join(unknown)} for method {method!r}; "
                          f"see 'nni-decouple search {method} --help'")
    parser.set_defaults(**recipe)
