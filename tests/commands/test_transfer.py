"""``nni-decouple transfer``: the command line as a user types it, on a tiny Cityscapes dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mm_data import CITYSCAPES_SIZE, make_cityscapes, session_dir, train_backbone

from nni_decouple.cli import main
from nni_decouple.commands.transfer import replace_data_root, resolve_launcher

REPO = Path(__file__).resolve().parents[2]
DEEPLAB = REPO / "configs/mmseg/deeplabv3_nd-dots-imagenet_4xb2-80k_cityscapes-512x1024.py"
W, H = CITYSCAPES_SIZE

# What a user passes to make the DeepLabV3 config test-sized: every change is a --cfg-options entry.
TINY = [
    f"model.data_preprocessor.size=({H},{W})", "model.decode_head.channels=64", "model.auxiliary_head.channels=32",
    f"train_dataloader.dataset.pipeline.2.scale=({W},{H})", f"train_dataloader.dataset.pipeline.3.crop_size=({H},{W})",
    f"val_dataloader.dataset.pipeline.1.scale=({W},{H})", f"test_dataloader.dataset.pipeline.1.scale=({W},{H})",
    "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
    "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False",
    "test_dataloader.num_workers=0", "test_dataloader.persistent_workers=False",
    "train_cfg.max_iters=2", "train_cfg.val_interval=2", "default_hooks.checkpoint.interval=2",
]


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory) -> Path:
    return session_dir(tmp_path_factory, "cityscapes", make_cityscapes)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    return session_dir(tmp_path_factory, "train-run", train_backbone)


def backbone_from(run: Path) -> list[str]:
    """The documented change: the trained run as the backbone, its weights as the init checkpoint."""
    return [f"model.backbone.model={run}", f"model.backbone.init_cfg.checkpoint={run / 'model.pth'}"]


def test_parser_registered(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["transfer", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--work-dir", "--cfg-options", "--data-root", "--resume", "--test", "--launcher", "torchrun"):
        assert option in out


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["transfer", str(tmp_path / "missing.py")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nni-decouple transfer: error: config") and "\n" not in err
    assert main(["transfer", str(DEEPLAB), "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "--data-root" in capsys.readouterr().err


def test_a_data_root_without_the_dataset_is_refused_before_any_output(tmp_path, capsys):
    """mm would fail in its first dataloader with a traceback, after the work directory is made."""
    empty, work = tmp_path / "empty", tmp_path / "work"
    empty.mkdir()
    assert main(["transfer", str(DEEPLAB), "--data-root", str(empty), "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the dataset is not where the config reads it" in err
    assert f"train_dataloader.dataset.data_prefix.img_path '{empty}/leftImg8bit/train'" in err
    assert not work.exists()


def test_dataset_check_follows_wrappers_and_the_phase(tmp_path):
    from nni_decouple.commands.transfer import check_dataset_files, load_config
    from nni_decouple.errors import DataError

    cfg = load_config(str(REPO / "configs/mmdet/mask-rcnn_nd-dots-imagenet_fpn_1x_cityscapes.py"),
                      data_root=str(tmp_path))
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations/instancesonly_filtered_gtFine_train.json").write_text("{}")
    (tmp_path / "leftImg8bit/train").mkdir(parents=True)
    with pytest.raises(DataError) as error:  # the RepeatDataset's inner dataset is all there: val is missing
        check_dataset_files(cfg)
    assert "train_dataloader" not in str(error.value)
    assert "val_dataloader.dataset.ann_file" in str(error.value) and "val_evaluator.ann_file" in str(error.value)
    with pytest.raises(DataError, match="test_dataloader.dataset.ann_file"):
        check_dataset_files(cfg, test=True)
    (tmp_path / "annotations/instancesonly_filtered_gtFine_val.json").write_text("{}")
    (tmp_path / "leftImg8bit/val").mkdir()
    check_dataset_files(cfg)
    check_dataset_files(cfg, test=True)


def test_launcher_follows_torchrun():
    assert resolve_launcher("auto", {}) == "none"
    assert resolve_launcher("auto", {"WORLD_SIZE": "1", "LOCAL_RANK": "0"}) == "none"
    assert resolve_launcher("auto", {"WORLD_SIZE": "4", "LOCAL_RANK": "2"}) == "pytorch"
    assert resolve_launcher("slurm", {"WORLD_SIZE": "4", "LOCAL_RANK": "2"}) == "slurm"


def test_data_root_moves_every_path(tmp_path):
    from mmengine.config import Config

    cfg = Config.fromfile(str(REPO / "configs/mmdet/mask-rcnn_nd-dots-imagenet_fpn_1x_cityscapes.py"))
    assert replace_data_root(cfg, str(tmp_path)) >= 4
    assert "data/cityscapes" not in cfg.pretty_text
    assert cfg.val_evaluator.ann_file == f"{tmp_path}/annotations/instancesonly_filtered_gtFine_val.json"
    assert cfg.val_dataloader.dataset.data_root == f"{tmp_path}/"
    assert cfg.train_dataloader.dataset.dataset.data_root == f"{tmp_path}/"


def test_train_then_test_from_the_command_line(cityscapes, trained_run, tmp_path, monkeypatch, capsys):
    """``train`` then ``transfer``: the trained run is the backbone, its weights initialise it."""
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    options = [*TINY, *backbone_from(trained_run)]
    args = ["transfer", str(DEEPLAB), "--data-root", str(cityscapes), "--work-dir", str(work), "--cfg-options",
            *options]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "model.decode_head.in_channels: 768 -> 256" in out  # followed the trained, narrower backbone
    log = next(work.glob("*/*.log")).read_text()
    assert "loaded 148/148 weights" in log or "weights from" in log
    metrics = json.loads((work / "metrics.json").read_text())
    assert 0.0 <= metrics["mIoU"] <= 100.0
    checkpoint = work / "iter_2.pth"
    assert checkpoint.is_file()
    # Reading mmengine's checkpoint back goes through torch.load(weights_only=True) and the allow-list.
    assert main(["transfer", str(DEEPLAB), "--data-root", str(cityscapes), "--work-dir", str(work),
                 "--test", str(checkpoint), "--cfg-options", *options]) == 0
    assert "mIoU" in json.loads((work / "test_metrics.json").read_text())
    assert main(["transfer", str(DEEPLAB), "--data-root", str(cityscapes), "--work-dir", str(work),
                 "--resume", "--cfg-options", *options, "train_cfg.max_iters=3"]) == 0
    assert (work / "iter_3.pth").is_file() and "Load checkpoint from" in capsys.readouterr().out + "".join(
        p.read_text() for p in work.glob("*/*.log"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_torchrun_two_processes(cityscapes, trained_run, tmp_path):
    """The documented multi-process launch, on the CPU: torchrun, launcher detected, gloo backend."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "LOCAL_RANK", "RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "nni_decouple.cli", "transfer", str(DEEPLAB), "--data-root", str(cityscapes),
           "--work-dir", str(tmp_path / "work"), "--cfg-options", *TINY, *backbone_from(trained_run),
           "train_dataloader.batch_size=2"]  # ASPP pooling BN needs 2 per process
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = next((tmp_path / "work").glob("*/*.log")).read_text()
    assert "Distributed launcher: pytorch" in log and "Distributed training: True" in log
    assert "GPU number: 2" in log  # mmengine names the world size so, GPUs or not
    assert "mIoU" in json.loads((tmp_path / "work" / "metrics.json").read_text())
