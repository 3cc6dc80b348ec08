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
