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

from ..errors import ConfigError


def load_recipe(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = Path(path)
    try:
        exists = path.is_file()
    except (OSError, ValueError):  # a name with a NUL byte, or too long
        exists = False
    if not exists:
        raise ConfigError(f"recipe {str(path)!r:.200} does not exist: check the path (recipes ship in configs/search/)")
    if path.resolve() in _seen:
        raise ConfigError(f"recipe {str(path)!r} inherits from itself through _base_")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"recipe {str(path)!r} is not UTF-8 text: save it as UTF-8 YAML") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {str(path)!r} is not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ConfigError(f"recipe {str(path)!r} is nested too deeply to be a recipe") from None
    if data is None:  # an empty file: no options
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {str(path)!r} must be a mapping of option: value, got {type(data).__name__}")
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"recipe {str(path)!r}: _base_ must be a file name or a list of file names, "
                          f"got {bases!r:.60}")
    merged: dict[str, Any] = {}
    for base in bases:
        merged.update(load_recipe(path.parent / base, (*_seen, path.resolve())))
    merged.update({str(k).replace("-", "_"): v for k, v in data.items()})
    return merged


def apply_recipe(parser: argparse.ArgumentParser, recipe: dict[str, Any], method: str | None, where: str,
                 command: str = "search") -> None:
    """Set ``recipe`` as the parser's defaults, refusing keys the method (or ``command``, which has no
    methods) does not have and values its options would refuse on the command line (argparse converts only
    string defaults, so a recipe's list or wrong-typed number would otherwise fail deep inside the run)."""
    recipe = dict(recipe)
    if method is None:
        help_of = f"nni-decouple {command} --help"
        actions = {a.dest: a for a in parser._actions}
        unknown = sorted(set(recipe) - set(actions) - {"func", "subparser", "named_recipes", "recipe"}, key=str)
        if unknown or "recipe" in recipe:
            names = ", ".join(repr(k)[:40] for k in (unknown or ["recipe"]))
            raise ConfigError(f"recipe {where!r} sets unknown option(s) {names} for '{command}'; see '{help_of}'")
        parser.set_defaults(**{key: _value(parser, actions[key], key, value, where) for key, value in recipe.items()})
        return
    named = recipe.pop("method", method)
    if named != method:
        from ..strategies import load_all

        fix = (f"run 'nni-decouple search {named} --recipe {where}'" if isinstance(named, str) and named in load_all()
               else f"set 'method: {method}' or drop the key")
        raise ConfigError(f"recipe {where!r} is for method {named!r:.40}, not {method!r}: {fix}")
    actions = {a.dest: a for a in parser._actions}
    unknown = sorted(set(recipe) - set(actions), key=str)
    if unknown:
        names = ", ".join(repr(k)[:40] for k in unknown)
        raise ConfigError(f"recipe {where!r} sets unknown option(s) {names} for method {method!r}; "
                          f"see 'nni-decouple search {method} --help'")
    parser.set_defaults(**{key: _value(parser, actions[key], key, value, where) for key, value in recipe.items()})


def _value(parser: argparse.ArgumentParser, action: argparse.Action, key: str, value: Any, where: str) -> Any:
    """``value`` as the command line would give it for ``action``, or a :class:`ConfigError`."""
    flag = "/".join(action.option_strings) or key

    def refuse(expected: str) -> ConfigError:
        return ConfigError(f"recipe {where!r}: {key}: {value!r:.60} is not {expected} (option {flag}); "
                           f"fix the value (the option's help: 'nni-decouple search METHOD --help')")

    if action.nargs == 0:  # a switch (--force, --balanced/--no-balanced)
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    if value is None:
        if action.default is not None:
            raise refuse("a value (this option has no 'unset')")
        return None
    if isinstance(action, argparse._AppendAction):  # repeatable: a list of what one use takes
        if not isinstance(value, list):
            raise refuse("a list")
        return [_scalar(parser, action, item, refuse) for item in value]
    return _scalar(parser, action, value, refuse)


def _scalar(parser: argparse.ArgumentParser, action: argparse.Action, value: Any, refuse: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise refuse("a single number or word")
    try:
        converted = parser._get_value(action, str(value))  # the option's own type= conversion
        parser._check_value(action, converted)  # and its choices=
    except (argparse.ArgumentError, TypeError, ValueError):
        kind = getattr(action.type, "what", None) or {int: "a whole number", float: "a number"}.get(
            action.type, "a valid value")  # type: ignore[call-overload]
        raise refuse(f"one of {', '.join(map(str, action.choices))}" if action.choices else kind) from None
    return converted
