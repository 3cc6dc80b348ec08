"""``nni-decouple search``: a real search end to end, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from image_folder import make_image_folder

from nni_decouple.cli import main
from nni_decouple.models.genotype import load_genotype

TINY = ["--epochs", "1", "--train-limit", "64", "--layers", "3", "--channels", "4", "--nodes", "2",
        "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def darts_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "darts"
    assert main(["search", "darts", *TINY, "--out", str(out)]) == 0
    return out


def test_search_writes_the_run(darts_run, capsys):
    for name in ("genotype.json", "arch_probs.json", "config.json", "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (darts_run / name).is_file(), name
    # one checkpoint file per save (Lightning's default wrote an identical epoch=...ckpt beside it)
    assert [p.name for p in (darts_run / "checkpoints").iterdir()] == ["last.ckpt"]
    genotype = load_genotype(darts_run / "genotype.json")
    assert genotype.meta["method"] == "darts"
    probs = json.loads((darts_run / "arch_probs.json").read_text())
    assert set(probs["skip_connections"]) == {"normal", "reduce"}
    assert probs["probs"] and probs["arch"] == genotype.to_arch()


def test_existing_out_is_not_overwritten(darts_run, capsys):
    before = (darts_run / "genotype.json").read_text()
    assert main(["search", "darts", *TINY, "--out", str(darts_run)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--force" in err
    assert (darts_run / "genotype.json").read_text() == before


def test_resume_with_other_options_is_refused(darts_run, capsys):
    assert main(["search", "darts", *TINY, "--seed", "7", "--out", str(darts_run), "--resume"]) == 2
    assert "different options (seed)" in capsys.readouterr().err


def test_resume_may_switch_the_fast_path(darts_run, tmp_path, capsys):
    """``--fast``/``--no-fast`` compute the same search (docs/performance.md): a run started on one
    resumes on the other, and a run written before the option existed (no ``fast``/``precision`` in its
    config.json, as tests/fixtures/old_run) resumes with the defaults."""
    copy = tmp_path / "copy"
    shutil.copytree(darts_run, copy)
    assert main(["search", "darts", *TINY, "--epochs", "2", "--no-fast", "--out", str(copy), "--resume"]) == 0
    config = json.loads((copy / "config.json").read_text())
    for key in ("fast", "precision", "device"):
        config.pop(key)
    (copy / "config.json").write_text(json.dumps(config))
    assert main(["search", "darts", *TINY, "--epochs", "3", "--out", str(copy), "--resume"]) == 0
    assert "different options" not in capsys.readouterr().err


def _copy_with_checkpoint(run, tmp_path, change):
    """A copy of ``run`` whose last.ckpt went through ``change(checkpoint dict)`` (None: truncated)."""
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    ckpt = copy / "checkpoints" / "last.ckpt"
    if change is None:
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    else:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        change(state)
        torch.save(state, ckpt)
    return copy, ckpt


@pytest.mark.parametrize("change, message", [
    (None, "cannot be read (RuntimeError): it is truncated or not a checkpoint"),
    (lambda state: state["nni_decouple_config"].update(method="dots", channels=16),
     "is from another search (method='dots', channels=16)"),
    (lambda state: state.pop("nni_decouple_config"), "was not written by 'nni-decouple search'"),
], ids=["truncated", "another-method-and-space", "foreign"])
def test_resume_refuses_a_checkpoint_that_is_not_this_runs(darts_run, tmp_path, capsys, change, message):
    run, ckpt = _copy_with_checkpoint(darts_run, tmp_path, change)
    before = ckpt.read_bytes()
    assert main(["search", "darts", *TINY, "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "start a new run" in err and len(err.splitlines()) == 1, err
    assert ckpt.read_bytes() == before  # nothing the user saved is touched


def test_resume_before_the_first_checkpoint_says_to_start_again(darts_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(darts_run, run)
    shutil.rmtree(run / "checkpoints")  # killed in its first epoch
    assert main(["search", "darts", *TINY, "--out", str(run), "--resume"]) == 2
    assert "stopped before its first checkpoint" in capsys.readouterr().err and (run / "config.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--ops", "sep_conv_9x9"], "unknown op"),
    (["--dataset", "cifar10", "--data-root", "/nonexistent/cifar"], "does not exist"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--recipe", "/nonexistent/recipe.yaml"], "recipe '/nonexistent/recipe.yaml' does not exist"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
    assert main(["search", "darts", *TINY, "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "genotype.json").exists()


@pytest.mark.parametrize("bad_name, written", [("0.jpg", False), ("z.jpg", True)], ids=["first-file", "mid-epoch"])
def test_a_file_that_is_no_image_is_one_line(tmp_path, capsys, bad_name, written):
    """A bad first file of a class is refused before the run directory exists; a later one stops the
    search (in a DataLoader worker here) with the same line, and the run stays resumable."""
    root = make_image_folder(tmp_path / "images", bad_name, b"not an image")
    out = tmp_path / "run"
    args = [*TINY, "--batch-size", "4", "--dataset", "imagefolder", "--data-root", str(root), "--num-workers", "1"]
    assert main(["search", "darts", *args, "--out", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"nni-decouple search: error: '{root / 'train' / 'a' / bad_name}' is not a readable image (not an "
                    f"image format PIL knows): remove or replace it, then run again (with --resume to continue from "
                    f"the last checkpoint)")
    assert out.exists() is written and not (out / "genotype.json").exists()


def test_recipe_sets_defaults_and_flags_win(tmp_path):
    recipe = tmp_path / "r.yaml"
    base = tmp_path / "base.yaml"
    base.write_text("layers: 3\nchannels: 4\nnodes: 2\n")
    recipe.write_text("_base_: base.yaml\nmethod: darts\nepochs: 1\ntrain_limit: 64\nbatch-size: 16\nseed: 5\n")
    out = tmp_path / "run"
    assert main(["search", "darts", "--recipe", str(recipe), "--seed", "6", "--no-progress", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["layers"], config["epochs"], config["batch_size"], config["seed"]) == (3, 1, 16, 6)


def test_recipe_for_another_method(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: gdarts\n")
    assert main(["search", "darts", "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "is for method 'gdarts'" in capsys.readouterr().err


def test_errors_print_no_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"normal": {"nodes": [[["sep_conv_3x3", 0]], []], "concat": [2, 3]}, '
                   '"reduce": {"nodes": [[["max_pool_3x3", 1]]]}}')
    proc = subprocess.run([sys.executable, "-m", "nni_decouple.cli", "genotype", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "node 3 has no input" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _numeric_options():
    """(method, flag, action) for every numeric option of every ``search`` method."""
    from nni_decouple.cli import build_parser

    search = build_parser()._subparsers._group_actions[0].choices["search"]
    methods = search._subparsers._group_actions[0].choices
    return [(name, action.option_strings[0], action) for name, sub in sorted(methods.items())
            for action in sub._actions if action.option_strings and action.type not in (None, str)]


def test_every_numeric_option_is_range_checked():
    """A numeric option is either a SearchConfig field (``SearchConfig.check``) or has a Bounded type,
    so NaN, infinity or an out-of-range value never reaches a search."""
    from dataclasses import fields

    from nni_decouple.options import Bounded
    from nni_decouple.runner.experiment import SearchConfig

    checked = {f.name for f in fields(SearchConfig)}
    loose = [f"{method} {flag}" for method, flag, action in _numeric_options()
             if action.dest not in checked and not isinstance(action.type, Bounded)]
    assert not loose, loose


@pytest.mark.parametrize("method, flag, action", [o for o in _numeric_options() if hasattr(o[2].type, "what")],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_out_of_range_method_options_are_refused_on_the_line_and_in_recipes(method, flag, action, tmp_path, capsys,
                                                                            monkeypatch):
    from nni_decouple.runner import experiment

    monkeypatch.setattr(experiment, "build_datasets", lambda *a, **k: pytest.fail("a search started"))
    with pytest.raises(SystemExit) as done:
        main(["search", method, flag, "nan", "--out", str(tmp_path / "run")])
    assert done.value.code == 2
    assert f"argument {flag}: must be {action.type.what}, got 'nan'" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"{flag[2:]}: .inf\n")
    assert main(["search", method, "--recipe", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag[2:] in err and action.type.what in err, err
    assert not (tmp_path / "run").exists()


def test_a_log_file_gets_one_line_per_epoch_and_no_library_noise(tmp_path):
    """`nni-decouple search dots ... > log.txt`: what runs, one line per epoch, the next commands; none of
    Lightning's or NNI's lines that say nothing to the user, and warnings without source lines."""
    from nni_decouple.runner.console import NOISE

    out = tmp_path / "run"
    log, err = tmp_path / "log.txt", tmp_path / "err.txt"
    argv = [sys.executable, "-m", "nni_decouple.cli", "search", "dots", "--epochs", "4", "--train-limit", "32",
            "--layers", "3", "--channels", "4", "--nodes", "2", "--batch-size", "16", "--out", str(out)]
    with log.open("w") as stdout, err.open("w") as stderr:  # not a terminal: no progress bar
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny network: one thread (see conftest)
        assert subprocess.run(argv, stdout=stdout, stderr=stderr, env=env, timeout=900).returncode == 0, err.read_text()
    text, errors = log.read_text(), err.read_text()
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/4", "2/4", "3/4", "4/4"], text
    assert all("train_loss" in line and "ETA" in line for line in epochs), epochs
    opening = text.splitlines()[:4]  # what runs, a line each: space, data, stage plan, run directory
    assert opening[0].startswith("search dots: 3 cells (shared by type), 4 channels, 2 nodes"), opening
    assert opening[1].startswith("data mnist5k: 16 weight + 16 architecture images, batch 16"), opening
    assert opening[2].startswith("stage plan (4 epochs): op warm-up epoch 1, op search epoch 2, topology warm-up "
                                 "epoch 3, topology search epoch 4; topology temperature 10 -> 0.02"), opening
    assert opening[3] == f"run directory: {out}", opening
    assert text.count("stage plan") == 1, text
    assert "skip connections: normal " in text and "{" not in text.split("skip connections:")[1].splitlines()[0]
    assert f"nni-decouple report {out}" in text and "tensorboard --logdir" in text
    everything = text + errors
    noise = [line for line in everything.splitlines()
             if any(re.search(p, line) for p in NOISE) or re.search(r"^\s+warnings\.warn\(|\.py:\d+: \w*Warning", line)]
    assert not noise, noise
    # the lines seen in such logs, named here too so that the test does not only check NOISE against itself
    seen = ("GPU available:", "Config is not provided", "Strategy is found to be", "`Trainer.fit` stopped")
    assert not [line for line in everything.splitlines() if line.startswith(seen)], everything


def test_a_refusal_while_the_supernet_is_built_leaves_no_run(tmp_path, capsys):
    """The issue's case: DNAS' partial channels (K = 4) do not divide 6 channels; the search is refused in one
    line and --out stays empty, so the corrected command can use it."""
    out = tmp_path / "k"
    argv = ["search", "dnas", "--layers", "3", "--channels", "6", "--nodes", "3", "--train-limit", "64",
            "--epochs", "1", "--batch-size", "16", "--no-progress", "--out", str(out)]
    assert main(argv) == 2
    assert "K=4 does not divide" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("method", ["darts", "gdarts", "dots", "edarts", "dnas", "stretchable", "ddarts", "compose"])
def test_every_method_checks_its_supernet_before_the_run_directory(method, tmp_path, capsys, monkeypatch):
    """Any refusal raised while a method's supernet is built (here: a ConfigError from NNI's one-shot
    mutation, which every method's strategy goes through) leaves no run directory."""
    from nni.nas.oneshot.pytorch.strategy import OneShotStrategy

    from nni_decouple.errors import ConfigError

    def refuse(self, model):
        raise ConfigError("refused while building the supernet")

    monkeypatch.setattr(OneShotStrategy, "mutate_model", refuse)
    out = tmp_path / "run"
    args = ["--epochs", "2", "--train-limit", "32", "--layers", "3", "--channels", "4", "--nodes", "2",
            "--batch-size", "16", "--no-progress", "--out", str(out)]
    assert main(["search", method, *args]) == 2
    assert "refused while building the supernet" in capsys.readouterr().err
    assert not out.exists()
