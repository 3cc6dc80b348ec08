"""The code in README.md and docs/*.md runs, so the docs cannot drift from the package.

- Every ``python`` block runs as printed, in a fresh interpreter whose working directory is the
  repository (the blocks read the shipped ``backbones/`` and the bundled MNIST-5k; nothing is written
  there: outputs go to a temporary ``NNI_DECOUPLE_HOME``). A block that needs data which is not here
  says so in an HTML comment right above it, ``<!-- docs-test: skip (reason) -->``, and is skipped
  with that reason.
- Every ``nni-decouple`` command of a ``bash`` block is parsed by the CLI's own parser (subcommand,
  method, every option and its type and range), and every ``--recipe`` file it names exists. They
  are not run here: they are searches and trainings of minutes to days, on data (CIFAR, ImageNet,
  COCO) that is not here; ``tests/commands`` runs each subcommand on small data.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")


def code_blocks(path: Path) -> list[tuple[str, int, str, str | None]]:
    """``(language, first line number, code, skip reason)`` for every fenced block of ``path``."""
    blocks: list[tuple[str, int, str, str | None]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start = i + 1
        end = next(j for j in range(start, len(lines)) if lines[j].startswith("```"))
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.search(above)
        blocks.append((m[1], start + 1, "\n".join(lines[start:end]), skip["reason"] if skip else None))
        i = end + 1
    return blocks


def _blocks(language: str) -> list:
    return [pytest.param(code, reason, id=f"{path.relative_to(REPO)}:{line}")
            for path in DOCS for lang, line, code, reason in code_blocks(path) if lang == language]


def test_the_extractor_finds_blocks_and_skip_marks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n```python\nx = 1\n```\n<!-- docs-test: skip (needs CIFAR-10) -->\n\n```bash\nls\n```\n")
    assert code_blocks(page) == [("python", 3, "x = 1", None), ("bash", 8, "ls", "needs CIFAR-10")]


def test_the_docs_have_python_blocks():
    assert len(_blocks("python")) >= 6


@pytest.mark.timeout(600)
@pytest.mark.parametrize("code, reason", _blocks("python"))
def test_python_block_runs(code, reason, tmp_path):
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NNI_DECOUPLE_HOME": str(tmp_path / "home")}
    # One torch thread, as in the rest of the suite (conftest.py): the networks are tiny.
    proc = subprocess.run([sys.executable, "-c", "import torch; torch.set_num_threads(1)\n" + code], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # NNI's import warning and per-run training_service warnings do not reach the user
    assert "might not be supported" not in proc.stderr and "training_service" not in proc.stdout + proc.stderr


def _commands(code: str) -> list[list[str]]:
    """The ``nni-decouple`` command lines of a shell block (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["nni-decouple"] and "..." not in words:
            commands.append(words[1:])
    return commands


SHELL_COMMANDS = [pytest.param(words, id=f"{p.id}:{' '.join(words[:3])}")
                  for p in _blocks("bash") for words in _commands(p.values[0])]


def test_the_docs_have_commands():
    assert len(SHELL_COMMANDS) >= 40


@pytest.mark.parametrize("words", SHELL_COMMANDS)
def test_command_parses(words, capsys):
    from nni_decouple.cli import build_parser

    try:
        args = build_parser().parse_args(words)
    except SystemExit as e:
        if e.code == 0 and "--help" in words:  # argparse prints the help and exits 0
            assert "usage: nni-decouple" in capsys.readouterr().out
            return
        pytest.fail(f"nni-decouple {' '.join(words)}: argparse refused it ({capsys.readouterr().err.strip()}, "
                    f"status {e.code})")
    recipe = getattr(args, "recipe", None)
    if recipe and recipe.endswith((".yaml", ".yml")):  # a file (``train --recipe`` also takes a name)
        assert (REPO / recipe).is_file(), f"--recipe {recipe} does not exist"


# ----------------------------------------------------------------------------- defaults tables
#: The command whose parser a page's option tables describe.
TABLE_COMMANDS = {
    "docs/ddarts.md": ["search", "ddarts"], "docs/dnas.md": ["search", "dnas"], "docs/dots.md": ["search", "dots"],
    "docs/edarts.md": ["search", "edarts"], "docs/stretchable.md": ["search", "stretchable"],
    "docs/visualise.md": ["show"],
}
#: Defaults the docs say in words (they depend on other options, or are decided when the command runs): what
#: the parser holds for them instead.
IN_WORDS = {
    ("docs/ddarts.md", "--warmup-epochs"): None,  # "5 with --start, else 0"
    ("docs/dots.md", "--survivors"): None,  # "groups for grouped, 1 otherwise"
    ("docs/dots.md", "--stage-epochs"): None,  # "scaled 15,15,20,20"
    ("docs/visualise.md", "--columns"): None,  # "2, or 3 beyond 8 cells"
    ("docs/visualise.md", "--title"): None,  # "the architecture's name"
}
CELL = re.compile(r"(?<!\\)\|")


def _options(cell: str) -> list[str]:
    """The options a table's first cell names: "`--a`, `--b`", "`--x K\\|epoch`", "`--s-alpha/-beta`",
    "`--y` / `--no-y`" (the negative form of a flag is the same option)."""
    names = []
    for code in re.findall(r"`([^`]+)`", cell):
        for part in code.split(" / "):
            word = part.split()[0] if part.split() else ""
            if not word.startswith("--") or word.startswith("--no-"):
                continue
            first, *more = word.split("/")
            names.append(first)
            names.extend(first.rsplit("-", 1)[0] + m if m.startswith("-") else m for m in more)
    return names


def default_rows(path: Path) -> list[tuple[int, str, str]]:
    """``(line, option, documented default)`` of every options table of ``path`` that says defaults: a
    ``default`` column, or "(default X)" in the row, or "`--option` value" pairs in a row without an option."""
    rows: list[tuple[int, str, str]] = []
    column = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            column = None
            continue
        cells = [c.strip() for c in CELL.split(line.strip().strip("|"))]
        if column is None:  # a header
            column = next((i for i, c in enumerate(cells) if "default" in c.lower()), -1)
            continue
        if set(line) <= set("|-: "):
            continue
        names = _options(cells[0])
        if names and column >= 0 and column < len(cells) and cells[column]:
            values = re.split(r", | / ", cells[column]) if len(names) > 1 else [cells[column]]
            assert len(values) == len(names), f"{path.name}:{number}: {len(names)} options, defaults {values}"
            rows.extend((number, name, value) for name, value in zip(names, values, strict=True))
        elif names:
            said = re.search(r"\(default:? ([^)]+)\)", line)
            if said:
                rows.append((number, names[0], said[1]))
        else:
            rows.extend((number, name, value) for name, value in re.findall(r"`(--[\w-]+)` ([^\s,;()`]+)", line))
    return rows


def _documented(text: str) -> object:
    text = re.sub(r"\s*\(.*\)$", "", text).replace("`", "").replace("\\|", "|").strip()
    if text in ("on", "off"):
        return text == "on"
    try:
        return float(text)
    except ValueError:
        return text


def _sub(parser, words: list[str]):
    import argparse

    for word in words:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return parser


def test_the_defaults_table_reader_finds_every_form(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("| option | default | what |\n|---|---|---|\n| `--a K\\|epoch`, `--b` | 3e-3, `x` | . |\n"
                    "| `--s-alpha/-beta` | sigmoid / softmax | . |\n| `--y` / `--no-y` | on | . |\n"
                    "| common | | `--epochs` 10, `--lr` 0.025 -> |\n\n| option | meaning |\n|---|---|\n"
                    "| `--dpi N` | resolution (default 120) |\n")
    assert [(o, v) for _, o, v in default_rows(page)] == [
        ("--a", "3e-3"), ("--b", "`x`"), ("--s-alpha", "sigmoid"), ("--s-beta", "softmax"), ("--y", "on"),
        ("--epochs", "10"), ("--lr", "0.025"), ("--dpi", "120")]


def test_every_page_with_a_defaults_table_is_checked():
    pages = {str(p.relative_to(REPO)) for p in DOCS if default_rows(p)}
    assert pages == set(TABLE_COMMANDS), pages ^ set(TABLE_COMMANDS)


@pytest.mark.parametrize("page", sorted(TABLE_COMMANDS))
def test_documented_defaults_are_the_parsers(page):
    """Every default an options table states is the one the command's parser holds (or, for an option whose
    parser default is unset, the method's space default), so the tables cannot drift from ``--help``."""
    from nni_decouple.cli import build_parser

    parser = _sub(build_parser(), TABLE_COMMANDS[page])
    space = {}
    if TABLE_COMMANDS[page][0] == "search":
        from nni_decouple.strategies import get_method

        space = dict(get_method(TABLE_COMMANDS[page][1]).space_defaults)
    wrong = []
    for line, option, text in default_rows(REPO / page):
        assert option in parser._option_string_actions, f"{page}:{line}: {option} is not an option of the command"
        action = parser._option_string_actions[option]
        actual = action.default if action.default is not None else space.get(action.dest)
        if action.nargs == 0 and action.const is not None:  # a flag (store_true/false): "on" means given by default
            actual = action.default == action.const
        if (page, option) in IN_WORDS:
            ok = actual == IN_WORDS[page, option]
        else:
            said = _documented(text)
            ok = (isinstance(said, float) and not isinstance(actual, bool) and isinstance(actual, (int, float))
                  and abs(said - actual) <= 1e-12 * max(1.0, abs(actual))) or said == actual
        if not ok:
            wrong.append(f"{page}:{line}: {option} documented {text!r}, parser default {actual!r}")
    assert not wrong, "\n".join(wrong)
