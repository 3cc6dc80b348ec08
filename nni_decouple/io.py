"""Safe file output: atomic writes and run directories that are never silently overwritten."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import OutputExistsError


def current_umask() -> int:
    """The process's umask, read without changing it where the system tells (Linux), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``,
    so that a crash never leaves a half-written file (and an existing one stays whole until then).

    The file gets the mode any other program's new file would (``0o666`` less the umask), or keeps the
    mode of the file it replaces: ``mkstemp`` alone makes it ``0o600``, unreadable to anyone else."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def prepare_run_dir(out: str | os.PathLike, *, resume: bool = False, force: bool = False,
                    outputs: Sequence[str] = ()) -> Path:
    """Create the output directory of a run.

    An existing non-empty directory is an error unless ``resume`` (continue that run) or
    ``force`` (the user asked to overwrite) is set. With ``force`` the entries named in ``outputs``
    (what a run writes) are removed first, so that the new run's history, checkpoints and logs do
    not mix with the old run's and no stale result survives a new run that fails; other files stay.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {str(out)!r} is a file: choose a directory path")
    busy = out.is_dir() and any(out.iterdir())
    if busy and not (resume or force):
        raise OutputExistsError(
            f"--out {str(out)!r} already holds a run: pass --resume to continue it, --force to overwrite it, "
            f"or choose another --out"
        )
    if resume and not busy:
        raise OutputExistsError(f"--resume given but {str(out)!r} holds no run to resume: drop --resume")
    if busy and force and not resume:
        for name in outputs:
            old = out / name
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.exists() or old.is_symlink():
                old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out
