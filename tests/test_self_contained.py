"""The repository stands on its own: nothing it ships reads or points to a path outside the clone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: A parent-relative path out of the repository, the project's steering folder, or a machine's absolute path.
OUTSIDE = re.compile(r"\.\./shared|(?<![\w.])shared/(reference|papers)|/work/|DESIGN\.md|METHODS\.md")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    files = []
    for name in names:
        path = REPO / name
        if path.suffix in {".py", ".md", ".sh", ".toml", ".yaml", ".yml", ".txt", ".json", ".cfg"} or \
                name.startswith(".ci/"):
            files.append(path)
    return files


def test_no_file_refers_outside_the_repository():
    offenders = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not offenders, "\n".join(offenders)


def test_released_architectures_ship_in_the_repository(reference_genotypes_path):
    assert reference_genotypes_path.is_relative_to(REPO)
    assert "DARTS_V2 = Genotype(" in reference_genotypes_path.read_text()
