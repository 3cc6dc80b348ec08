"""Safe output: atomic writes keep the old file whole on a crash; run directories are never overwritten
without --resume or --force."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nni_decouple.errors import OutputExistsError
from nni_decouple.io import atomic_write_bytes, atomic_write_json, atomic_write_text, prepare_run_dir


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "genotype.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["genotype.json"]


def test_a_crash_during_the_write_keeps_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.pth"
    atomic_write_bytes(path, b"old weights")

    def crash(*args: object) -> None:
        raise KeyboardInterrupt  # the process is stopped between writing and renaming

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new weights, half written")
    assert path.read_bytes() == b"old weights"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]


def test_run_directory_is_not_overwritten_without_asking(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert prepare_run_dir(run) == run and run.is_dir()
    (run / "genotype.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="already holds a run: pass --resume .* --force"):
        prepare_run_dir(run)
    assert prepare_run_dir(run, resume=True) == run and (run / "genotype.json").read_text() == "{}"
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_text("old")
    (run / "notes.txt").write_text("mine")
    assert prepare_run_dir(run, force=True, outputs=("genotype.json", "checkpoints", "logs")) == run
    # --force replaces the old run's outputs (no stale result or checkpoint survives) and nothing else
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    with pytest.raises(OutputExistsError, match="holds no run to resume"):
        prepare_run_dir(tmp_path / "empty", resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="is a file"):
        prepare_run_dir(tmp_path / "file")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_respect_the_umask(tmp_path: Path, umask: int) -> None:
    """An atomic write makes the file any other program would (0666 less the umask; mkstemp alone gives 0600),
    through every writer and through the CLI; a replaced file keeps its mode."""
    from nni_decouple.cli import main

    old = os.umask(umask)
    try:
        written = [atomic_write_json(tmp_path / "a.json", {}), atomic_write_text(tmp_path / "b.txt", "b"),
                   atomic_write_bytes(tmp_path / "c.pth", b"c")]
        backbone = Path(__file__).resolve().parents[1] / "backbones" / "darts_v2.json"
        assert main(["genotype", str(backbone), "--to", "json", "--out", str(tmp_path / "g.json")]) == 0
        written.append(tmp_path / "g.json")
        for path in written:
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask, (path.name, oct(path.stat().st_mode))
        os.chmod(written[0], 0o640)
        atomic_write_json(written[0], {"again": 1})
        assert written[0].stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
