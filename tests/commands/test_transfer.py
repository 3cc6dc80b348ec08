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

RETINANET = REPO / "configs/mmdet/retinanet_nd-dots-imagenet_fpn_1x_coco.py"
W, H = CITYSCAPES_SIZE
# What a user passes to check the DeepLabV3 config at test size: one option.
TINY = ["--smoke", "--smoke-size", f"{W}x{H}"]


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
    assert main(["transfer", str(DEEPLAB), "--data-root", str(empty), "--work-dir", str(work),
                 "--cfg-options", "model.backbone.init_cfg=None"]) == 2
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
    options = backbone_from(trained_run)
    args = ["transfer", str(DEEPLAB), *TINY, "--data-root", str(cityscapes), "--work-dir", str(work),
            "--cfg-options", *options]
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
    assert main(["transfer", str(DEEPLAB), *TINY, "--data-root", str(cityscapes), "--work-dir", str(work),
                 "--test", str(checkpoint), "--cfg-options", *options]) == 0
    assert "mIoU" in json.loads((work / "test_metrics.json").read_text())
    assert main(["transfer", str(DEEPLAB), "--data-root", str(cityscapes), "--work-dir", str(work),
                 "--resume", *TINY, "--cfg-options", *options, "train_cfg.max_iters=3"]) == 0
    assert (work / "iter_3.pth").is_file() and "Load checkpoint from" in capsys.readouterr().out + "".join(
        p.read_text() for p in work.glob("*/*.log"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_torchrun_two_processes(cityscapes, trained_run, tmp_path):
    """The documented multi-process launch, on the CPU: torchrun, launcher detected, gloo backend."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "LOCAL_RANK", "RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "nni_decouple.cli", "transfer", str(DEEPLAB), "--data-root", str(cityscapes),
           "--work-dir", str(tmp_path / "work"), *TINY, "--cfg-options", *backbone_from(trained_run)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = next((tmp_path / "work").glob("*/*.log")).read_text()
    assert "Distributed launcher: pytorch" in log and "Distributed training: True" in log
    assert "GPU number: 2" in log  # mmengine names the world size so, GPUs or not
    assert "mIoU" in json.loads((tmp_path / "work" / "metrics.json").read_text())


# ----------------------------------------------------------------------------- refused before the Runner
def refused(capsys, args: list[str], work: Path) -> str:
    """Run the CLI; it must exit 2 with one line on stderr, no traceback and no work directory."""
    assert main(args) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nni-decouple transfer: error: "), err
    assert "Traceback" not in out + err
    assert not work.exists()
    return lines[0]


def test_in_index_outside_the_backbone_levels(tmp_path, capsys):
    """Old code: ``IndexError: list index out of range`` in the in_channels sync."""
    work = tmp_path / "work"
    line = refused(capsys, ["transfer", str(DEEPLAB), "--work-dir", str(work), "--cfg-options",
                            "model.backbone.out_indices=(1,2,3)", "model.backbone.init_cfg=None"], work)
    assert "model.decode_head.in_index=3 reads level 3" in line
    assert "3 levels (strides (8, 16, 32), channels (192, 384, 768))" in line and "0..2" in line


def test_fewer_levels_in_a_detector(tmp_path, capsys):
    """Old code: neck.in_channels kept four entries; mmdet's FPN failed later with a bare AssertionError."""
    work = tmp_path / "work"
    line = refused(capsys, ["transfer", str(RETINANET), "--work-dir", str(work), "--cfg-options",
                            "model.backbone.out_indices=(1,2,3)", "model.backbone.init_cfg=None"], work)
    assert "model.bbox_head.anchor_generator.strides=[8, 16, 32, 64, 128]" in line
    assert "gives strides (16, 32, 64, 128, 256)" in line and "set model.neck.start_level=0" in line


def test_strides_of_a_dartopti_backbone(tmp_path, capsys):
    """Old code: DARTOpti's levels (strides 2-16) trained in a detector made for 8-128 without a word."""
    work = tmp_path / "work"
    line = refused(capsys, ["transfer", str(RETINANET), "--work-dir", str(work), "--cfg-options",
                            "model.backbone.model=nd_dartopti_resnet18_sparse_c100_imagenet",
                            "model.backbone.init_cfg=None"], work)
    assert "expects features at strides (8, 16, 32, 64, 128)" in line and "(2, 4, 8, 16)" in line
    assert ": set model." in line  # an out_indices / start_level that gives them


@pytest.fixture(scope="module")
def mnist_export(tmp_path_factory) -> Path:
    """The README's path for a CPU user: an MNIST network (one input channel, CIFAR stem) exported."""
    def build(path: Path) -> None:
        assert main(["export", str(REPO / "backbones/dots_c10.json"), "--name", "dots_mnist", "--dataset", "mnist5k",
                     "--channels", "8", "--layers", "5", "--dir", str(path)]) == 0

    return session_dir(tmp_path_factory, "mnist-export", build) / "dots_mnist.json"


def test_cifar_stem_and_one_channel_exports(mnist_export, tmp_path, capsys):
    """Old code: ``feature index 3 is out of range (0 to 2)`` with no word on the levels; with fitting
    out_indices, a ~40-frame torch traceback (a 3-channel probe) after the work directory was made."""
    work = tmp_path / "work"
    base = ["--work-dir", str(work), "--cfg-options", f"model.backbone.model={mnist_export}",
            "model.backbone.init_cfg=None"]
    line = refused(capsys, ["transfer", str(DEEPLAB), *base], work)
    assert "model.backbone.out_indices=(0, 1, 2, 3) asks for level 3" in line
    assert "3 levels (strides (1, 2, 4)" in line and "model.backbone.out_indices=(0, 1, 2)" in line
    line = refused(capsys, ["transfer", str(RETINANET), *base, "model.backbone.out_indices=(0,1,2)"], work)
    assert "the backbone reads 1 input channel" in line and "model.data_preprocessor.mean has 3 values" in line


def test_model_pretrained_of_an_mmseg_config(tmp_path, capsys):
    """Old code: ``TypeError: ... unexpected keyword argument 'pretrained'`` from the backbone."""
    config = tmp_path / "mine.py"
    config.write_text("_base_ = ['mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py']\n"
                      "custom_imports = dict(imports=['nni_decouple.mm'], allow_failed_imports=False)\n"
                      "model = dict(backbone=dict(_delete_=True, type='NNIDecoupleBackbone', "
                      "model='nd_dots_imagenet', init_cfg=None))\n")
    work = tmp_path / "work"
    line = refused(capsys, ["transfer", str(config), "--work-dir", str(work)], work)
    assert "model.pretrained='open-mmlab://resnet50_v1c' is set" in line and "model.pretrained=None" in line


def test_default_checkpoint_is_one_place(tmp_path, capsys, monkeypatch):
    """Old code: the configs, the README and the error named three places, and the error came after
    ~490 lines of mmengine output and a work directory."""
    from nni_decouple.mm import DEFAULT_CHECKPOINT, DEFAULT_CHECKPOINT_COMMAND

    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    for config in (DEEPLAB, RETINANET):
        line = refused(capsys, ["transfer", str(config), "--work-dir", str(work)], work)
        assert f"default backbone checkpoint {DEFAULT_CHECKPOINT!r} does not exist" in line
        assert DEFAULT_CHECKPOINT_COMMAND in line
    readme = (REPO / "README.md").read_text()
    assert DEFAULT_CHECKPOINT in readme and DEFAULT_CHECKPOINT_COMMAND in readme
    for config in sorted(REPO.glob("configs/mm*/*.py")):
        text = config.read_text()
        assert f"checkpoint='{DEFAULT_CHECKPOINT}'" in text and DEFAULT_CHECKPOINT_COMMAND in text, config.name
    # The command's run directory is that place: `train` names it runs/train-LABEL-DATASET.
    from nni_decouple.commands._architecture import resolve

    assert DEFAULT_CHECKPOINT == f"runs/train-{resolve('dots_imagenet').label}-imagenet/model.pth"


def test_other_checkpoints_are_checked_before_the_runner(tmp_path, capsys):
    work = tmp_path / "work"
    line = refused(capsys, ["transfer", str(RETINANET), "--work-dir", str(work), "--cfg-options",
                            f"model.backbone.init_cfg.checkpoint={tmp_path / 'mine.pth'}"], work)
    assert "model.backbone.init_cfg.checkpoint" in line and "mine.pth" in line and "does not exist" in line
    line = refused(capsys, ["transfer", str(RETINANET), "--work-dir", str(work), "--cfg-options",
                            "model.backbone.init_cfg=None", f"load_from={tmp_path / 'coco.pth'}"], work)
    assert "load_from" in line and "load_from=None" in line


# ----------------------------------------------------------------------------- without OpenMMLab
BLOCK_MM = """
import contextlib, io, json, sys
class NoOpenMMLab:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmengine', 'mmcv', 'mmdet', 'mmseg'):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, NoOpenMMLab())
from nni_decouple.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    results.append([code, out.getvalue(), err.getvalue()])
mm = sorted(m for m in sys.modules if m.split('.')[0] in ('mmengine', 'mmcv', 'mmdet', 'mmseg'))
print(json.dumps({"results": results, "imported": mm}))
"""


def test_every_command_but_transfer_runs_without_openmmlab(tmp_path):
    """``pip install .`` without [mm]: old code imported mmengine at start-up, so even ``search --help`` failed.
    One interpreter where importing OpenMMLab fails runs every command's help, a command that does work,
    and ``transfer``."""
    import pkgutil

    from nni_decouple import commands as package

    commands = sorted(i.name for i in pkgutil.iter_modules(package.__path__) if not i.name.startswith("_"))
    assert "transfer" in commands and len(commands) >= 5
    runs = [[c, "--help"] for c in commands] + [["genotype", str(REPO / "backbones/dots_c10.json")],
                                                 ["transfer", str(DEEPLAB), "--work-dir", str(tmp_path / "work")]]
    proc = subprocess.run([sys.executable, "-c", BLOCK_MM, json.dumps(runs)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["imported"] == []
    *helps, genotype, transfer = report["results"]
    for command, (code, out, err) in zip(commands, helps, strict=True):
        assert code == 0 and "usage:" in out, (command, err[-2000:])
    assert genotype[0] == 0 and genotype[1].strip(), genotype[2][-2000:]
    code, _, err = transfer
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "transfer needs OpenMMLab" in lines[0] and 'pip install "nni-decouple[mm]"' in lines[0]
    assert not (tmp_path / "work").exists()
