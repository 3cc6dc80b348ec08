"""Malformed search recipes, generated: ``nni-decouple search METHOD --recipe FILE`` refuses every one
with a one-line ConfigError (the package's own type) before any search starts, and leaves no file.

Each example is invalid by construction: broken YAML, a top level that is not a mapping, non-UTF-8
bytes, an option the method does not have, a value of the wrong type or outside the option's choices
or range, a recipe for another method, or a broken ``_base_``. 1,100 examples (1,000 through the CLI,
100 through :func:`load_recipe`/:func:`apply_recipe` directly), derandomised for CI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nni_decouple.cli import main
from nni_decouple.commands.search import add_common_arguments
from nni_decouple.errors import ConfigError
from nni_decouple.runner.recipes import apply_recipe, load_recipe
from nni_decouple.strategies import get_method, load_all

METHODS = sorted(name for name, m in load_all().items() if m.same_default_as is None)


def method_parser(method: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    get_method(method).add_arguments(parser)
    return parser


PARSERS = {m: method_parser(m) for m in METHODS}
DESTS = {m: {a.dest: a for a in p._actions if a.dest != "help"} for m, p in PARSERS.items()}

#: Options checked for range before the run directory is made, and values outside it.
OUT_OF_RANGE: dict[str, Any] = {
    "epochs": st.integers(max_value=0), "batch_size": st.integers(max_value=0), "layers": st.integers(max_value=0),
    "channels": st.integers(max_value=0), "nodes": st.integers(max_value=0), "train_limit": st.integers(max_value=0),
    "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)),
    "subset": st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True)),
    "train_portion": st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0)),
    "learning_rate": st.floats(max_value=0.0), "weight_decay": st.floats(max_value=0.0, exclude_max=True),
    "devices": st.integers(max_value=0), "num_workers": st.integers(max_value=-1),
}

structure = st.one_of(st.lists(st.integers(), min_size=1, max_size=3), st.dictionaries(
    st.text(max_size=3), st.integers(), min_size=1, max_size=2))


def wrong_value(action: argparse.Action) -> Any:
    """Values this option refuses on the command line, by its kind."""
    if action.nargs == 0:  # a switch
        return st.one_of(st.integers(), st.text(max_size=5), structure)
    if isinstance(action, argparse._AppendAction):
        return st.one_of(st.integers(), st.booleans(), st.lists(structure, min_size=1, max_size=2))
    options = [structure, st.booleans()]
    if action.default is not None:
        options.append(st.none())
    if action.choices:
        options.append(st.text(max_size=8).filter(lambda v: v not in action.choices))
    if action.type is int:
        options += [st.floats().filter(lambda v: v != int(v) if v == v and abs(v) != float("inf") else True),
                    st.text(alphabet="abcxyz.-", min_size=1, max_size=5).filter(lambda v: not v.lstrip("-").isdigit())]
    elif action.type is float:
        options.append(st.text(alphabet="abcxyz", min_size=1, max_size=5).filter(lambda v: v not in ("inf", "nan")))
    return st.one_of(options)


@st.composite
def malformed_recipes(draw: Any) -> tuple[str, bytes]:
    method = draw(st.sampled_from(METHODS))
    kind = draw(st.sampled_from(["yaml", "top", "bytes", "unknown", "value", "range", "method", "base"]))
    if kind == "yaml":  # an unclosed flow collection or quote is never valid YAML
        filler = draw(st.text(alphabet="abc123 ,.-", max_size=10))
        text = draw(st.sampled_from([f"epochs: [{filler}", f"epochs: {{{filler}", f"ops: \"{filler}",
                                     f"a:\n  b: 1\n c: [{filler}"]))
        return method, text.encode()
    if kind == "top":
        value = draw(st.one_of(st.lists(st.integers(), min_size=1, max_size=3), st.integers(),
                               st.floats(allow_nan=False), st.text(min_size=1, max_size=8).filter(str.strip),
                               st.booleans()))
        text = yaml.safe_dump(value)
        if isinstance(yaml.safe_load(text), dict) or yaml.safe_load(text) is None:  # "a: b" as a string, "null"
            text = yaml.safe_dump([value])
        return method, text.encode()
    if kind == "bytes":
        return method, b"epochs: 1\n\xff\xfe" + draw(st.binary(max_size=10))
    recipe: dict[str, Any] = {"method": method}
    if kind == "unknown":
        key = draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
            lambda k: k.replace("-", "_") not in DESTS[method] and k not in ("method", "_base_")))
        recipe[key] = draw(st.integers())
    elif kind == "value":
        dest = draw(st.sampled_from(sorted(DESTS[method])))
        recipe[dest] = draw(wrong_value(DESTS[method][dest]))
    elif kind == "range":
        dest = draw(st.sampled_from(sorted(OUT_OF_RANGE)))
        recipe[dest] = draw(OUT_OF_RANGE[dest])
    elif kind == "method":
        recipe["method"] = draw(st.one_of(st.sampled_from([m for m in METHODS if m != method]), st.integers(),
                                          st.text(max_size=6).filter(lambda m: m != method)))
    else:
        recipe["_base_"] = draw(st.one_of(st.just("missing.yaml"), st.just("recipe.yaml"),  # absent, or itself
                                          st.integers(), st.lists(st.integers(), min_size=1, max_size=2),
                                          st.just([""])))
    return method, yaml.safe_dump(recipe).encode()


class SearchStarted(AssertionError):
    """Raised if a recipe got as far as loading data: it was not refused."""


def run_cli(method: str, content: bytes) -> tuple[int, str, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        recipe, out = Path(tmp) / "recipe.yaml", Path(tmp) / "run"
        recipe.write_bytes(content)
        err = io.StringIO()
        with mock.patch("nni_decouple.runner.experiment.build_datasets", side_effect=SearchStarted(content)), \
                contextlib.redirect_stderr(err):
            code = main(["search", method, "--recipe", str(recipe), "--no-progress", "--out", str(out)])
        return code, err.getvalue().strip(), sorted(p.name for p in Path(tmp).iterdir())


def fuzz(examples: int) -> settings:
    """Reproducible in CI (derandomised, no example database), no deadline on a busy machine."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@fuzz(1000)
@given(malformed_recipes())
def test_the_search_cli_refuses_a_malformed_recipe_before_searching(example: tuple[str, bytes]) -> None:
    method, content = example
    code, message, left = run_cli(method, content)
    assert code == 2, message
    assert message.startswith("nni-decouple search: error: ") and len(message.splitlines()) == 1, message
    assert left == ["recipe.yaml"], left  # no run directory, no temporary file


@fuzz(100)
@given(malformed_recipes())
def test_load_and_apply_raise_config_error_or_leave_it_to_the_search_checks(example: tuple[str, bytes]) -> None:
    method, content = example
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.yaml"
        path.write_bytes(content)
        try:
            apply_recipe(method_parser(method), load_recipe(path), method, str(path))
        except ConfigError as e:
            assert str(e).strip()
        else:  # what the parser accepts is a well-typed value out of range: the search's own check refuses it
            data = yaml.safe_load(content)
            assert set(data) - {"method"} <= set(OUT_OF_RANGE), data


def test_the_shipped_recipes_are_accepted() -> None:
    """The generator's counterpart: real recipes pass the same checks (so the checks are not just 'refuse')."""
    for path in sorted((Path(__file__).resolve().parents[2] / "configs" / "search").glob("*.yaml")):
        method = path.name.split("_")[0]
        parser = method_parser(method)
        apply_recipe(parser, load_recipe(path), method, str(path))
        assert parser.parse_args([]).epochs >= 1, path


@pytest.mark.parametrize("text, message", [
    ("epochs: [1, 2]\n", "epochs: [1, 2] is not a single number or word (option --epochs)"),
    ("epochs: 1.5\n", "epochs: 1.5 is not a whole number"),
    ("dataset: svhn\n", "is not one of"),
    ("- 1\n", "must be a mapping of option: value, got list"),
    ("_base_: 3\n", "_base_ must be a file name"),
])
def test_messages_name_the_option_and_the_fix(text: str, message: str) -> None:
    code, err, _ = run_cli("darts", text.encode())
    assert code == 2 and message in err, err
