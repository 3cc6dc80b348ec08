"""The mm backbone: registry, feature levels, freezing, weights, mmcv's ops, and every shipped config
trained for two iterations and validated through mmengine's Runner on tiny real-layout datasets."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest
import torch
from mm_data import CITYSCAPES_SIZE, COCO_SIZE, make_cityscapes, make_coco, session_dir, train_backbone
from torch import nn

from nni_decouple.errors import CheckpointError, ConfigError
from nni_decouple.mm import (
    NNIDecoupleBackbone,
    backbone_channels,
    backbone_levels,
    fit_to_backbone,
    match_state_dict,
    state_dict_from_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
MM_CONFIGS = sorted([*REPO.glob("configs/mmdet/*.py"), *REPO.glob("configs/mmseg/*.py")])
SMALL = dict(channels=16, layers=5)  # a narrow DOTS network: strides 4-32 with one cell each past the stem


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A run directory of ``nni-decouple train`` (tiny ImageNet-style DOTS network, one epoch)."""
    return session_dir(tmp_path_factory, "train-run", train_backbone)


def small_backbone(**kwargs) -> NNIDecoupleBackbone:
    kwargs.setdefault("model_kwargs", SMALL)
    return NNIDecoupleBackbone("nd_dots_imagenet", **kwargs)


# ----------------------------------------------------------------------------- the backbone
def test_registered_for_mmdet_and_mmseg():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG

    for registry in (DET, SEG):
        net = registry.build(dict(type="NNIDecoupleBackbone", model="nd_dots_imagenet", model_kwargs=SMALL))
        assert isinstance(net, NNIDecoupleBackbone)
        feats = net(torch.randn(2, 3, 64, 96))
        assert [f.shape[1] for f in feats] == list(net.channels) == [16, 64, 128, 256]
        assert [64 // f.shape[2] for f in feats] == list(net.strides) == [4, 8, 16, 32]


def test_out_indices_select_levels_and_prune_the_rest():
    net = small_backbone(out_indices=(1, 2))
    feats = net(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 8, 8), (128, 4, 4)]
    assert not any(k.startswith("net.model.classifier") for k in net.state_dict())  # no head
    with pytest.raises(ConfigError, match="out_indices"):
        small_backbone(out_indices=(2, 1))
    with pytest.raises(ConfigError, match="cannot build"):
        small_backbone(out_indices=(0, 9))


def test_any_timm_model_and_genotype_file(tmp_path):
    from dataclasses import replace

    from nni_decouple.models.genotype import save_genotype
    from nni_decouple.models.network import preset_genotype

    resnet = NNIDecoupleBackbone("resnet18", out_indices=(1, 2, 3, 4))
    assert resnet.channels == (64, 128, 256, 512) and resnet.strides == (4, 8, 16, 32)
    # A bare genotype (what a search writes) builds DARTS' ImageNet network: strides 4 to 32.
    bare = save_genotype(replace(preset_genotype("nd_dots_c10"), meta={}), tmp_path / "genotype.json")
    net = NNIDecoupleBackbone(str(bare))
    assert net.strides == (4, 8, 16, 32) and net.channels == (48, 192, 384, 768)
    # A backbone file builds the network it describes (CIFAR here: 3 levels), unless told otherwise.
    cifar = REPO / "backbones" / "dots_c10.json"
    assert NNIDecoupleBackbone(str(cifar), out_indices=(0, 1, 2)).strides == (1, 2, 4)
    assert NNIDecoupleBackbone(str(cifar), model_kwargs=dict(stem="imagenet")).strides == (4, 8, 16, 32)
    with pytest.raises(ConfigError, match="neither a timm model nor a genotype file"):
        NNIDecoupleBackbone(str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="decides"):
        small_backbone(model_kwargs=dict(SMALL, pretrained=True))


def _bn_training(net: nn.Module) -> list[bool]:
    return [m.training for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


def test_frozen_stages_like_mmdet_resnet():
    """frozen_stages=k freezes exactly what levels 0..k compute; gradients reach only the rest."""
    from mmdet.models.backbones import ResNet

    # Same semantics as mmdet's ResNet on the same architecture: frozen_stages=1 is stem + layer1.
    ours = NNIDecoupleBackbone("resnet18", out_indices=(1, 2, 3, 4), frozen_stages=1).train()
    ref = ResNet(depth=18, frozen_stages=1)
    ref.train()
    count = lambda m: sum(p.numel() for p in m.parameters() if not p.requires_grad)  # noqa: E731
    assert count(ours) == count(ref) > 0

    net = small_backbone(frozen_stages=0).train()
    stem0 = net.net.model.stem.stem0
    assert all(not p.requires_grad for p in stem0.parameters())
    assert all(p.requires_grad for p in net.net.model.cells.parameters())
    assert not any(m.training for m in stem0.modules() if isinstance(m, nn.BatchNorm2d))
    assert any(_bn_training(net.net.model.cells))
    sum(f.sum() for f in net(torch.randn(2, 3, 64, 64))).backward()
    assert all(p.grad is None for p in stem0.parameters())
    assert all(p.grad is not None for p in net.net.model.cells[-1].parameters())

    deeper = small_backbone(frozen_stages=1)
    assert count(deeper) > count(net)
    with pytest.raises(ConfigError, match="frozen_stages"):
        small_backbone(out_indices=(0, 1), frozen_stages=2)


def test_norm_eval_keeps_statistics():
    net = small_backbone(norm_eval=True).train()
    assert net.training and not any(_bn_training(net))
    before = [m.running_mean.clone() for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    net(torch.randn(2, 3, 64, 64))
    after = [m.running_mean for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(_bn_training(small_backbone(norm_eval=False).train()))


# ----------------------------------------------------------------------------- weights
def _full_network_state() -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(1)
    return timm.create_model("nd_dots_imagenet", pretrained=False, num_classes=10, **SMALL).state_dict()


@pytest.mark.parametrize("wrap", ["plain", "lightning", "ddp", "mm_detector"])
def test_pretrained_init_matches_every_key(tmp_path, wrap):
    state = _full_network_state()
    if wrap == "plain":
        ckpt = state
    elif wrap == "lightning":
        ckpt = {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3}
    elif wrap == "ddp":
        ckpt = {"state_dict": {f"module.model.{k}": v for k, v in state.items()}}
    else:
        ckpt = {"state_dict": {f"backbone.net.model.{k}": v for k, v in state.items()},
                "meta": {"epoch": 1}}
    path = tmp_path / "weights.pth"
    torch.save(ckpt, path)
    net = small_backbone(init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    net.init_weights()
    own = net.net.model.state_dict()
    assert own and all(torch.equal(v, state[k]) for k, v in own.items())


def test_pretrained_init_errors(tmp_path):
    net = small_backbone(init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "nope.pth")))
    with pytest.raises(CheckpointError, match="does not exist"):
        net.init_weights()
    wider = {k: v for k, v in _full_network_state().items()}
    torch.save({k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) if v.ndim else v for k, v in wider.items()},
               tmp_path / "wide.pth")
    with pytest.raises(CheckpointError, match="another shape"):
        small_backbone(init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "wide.pth"))).init_weights()
    partial = dict(list(wider.items())[: len(wider) // 2])
    with pytest.raises(CheckpointError, match="misses"):
        match_state_dict(wider, partial, "partial.pth")
    with pytest.raises(CheckpointError, match="holds no weights"):
        state_dict_from_checkpoint({"epoch": 1}, "x.pth")


def test_train_checkpoint_initialises_backbone(trained_run):
    """``nni-decouple train`` writes model.pth; the backbone built from that run loads every weight."""
    import logging

    from mmengine.logging import MMLogger

    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()  # print_log's "current" logger (its stream may be an old capture)
    records = Records()
    logger.addHandler(records)
    weights = trained_run / "model.pth"
    net = NNIDecoupleBackbone(str(trained_run), init_cfg=dict(type="Pretrained", checkpoint=str(weights)))
    assert net.channels == (16, 64, 128, 256)  # the network the run trained (its genotype.json)
    net.init_weights()
    trained = torch.load(weights, map_location="cpu")["state_dict"]
    own = net.net.model.state_dict()
    assert own and all(torch.equal(v, trained[k]) for k, v in own.items())
    logger.removeHandler(records)
    assert any(f"loaded {len(own)}/{len(own)} weights" in m for m in records.messages), records.messages
    # The same weights serve a preset name with the trained width.
    preset = NNIDecoupleBackbone("nd_dots_imagenet", model_kwargs=dict(channels=16, layers=5),
                                 init_cfg=dict(type="Pretrained", checkpoint=str(weights)))
    preset.init_weights()
    assert all(torch.equal(v, trained[k]) for k, v in preset.net.model.state_dict().items())


# ----------------------------------------------------------------------------- mmcv's compiled ops
def test_mmcv_ops_match_torchvision():
    from mmcv.ops import RoIAlign, nms
    from torchvision.ops import nms as tv_nms
    from torchvision.ops import roi_align as tv_roi_align

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(50, 2, generator=g) * 20], 1)
    scores = torch.rand(50, generator=g)
    _, keep = nms(boxes, scores, 0.5)
    assert torch.equal(keep.sort().values, tv_nms(boxes, scores, 0.5).sort().values)
    feats = torch.randn(2, 4, 16, 16, generator=g, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 12.0], [1, 0.0, 3.0, 15.0, 8.0]])
    ours = RoIAlign((3, 3), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feats, rois)
    ref = tv_roi_align(feats, rois, (3, 3), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    assert torch.allclose(ours, ref, atol=1e-5)
    ours.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- configs
def test_fit_fills_in_channels_from_the_backbone():
    from mmengine.config import Config

    det = Config.fromfile(str(REPO / "configs/mmdet/retinanet_nd-dots-imagenet_fpn_1x_coco.py"))
    assert fit_to_backbone(det) == []  # the shipped numbers are the preset's
    det.model.backbone.model_kwargs = SMALL
    assert fit_to_backbone(det) == ["model.neck.in_channels: [48, 192, 384, 768] -> [16, 64, 128, 256]"]
    seg = Config.fromfile(str(REPO / "configs/mmseg/deeplabv3_nd-dots-imagenet_4xb2-80k_cityscapes-512x1024.py"))
    assert fit_to_backbone(seg) == []
    seg.model.backbone.model = "resnet18"
    seg.model.backbone.out_indices = (1, 2, 3, 4)
    assert fit_to_backbone(seg) == ["model.decode_head.in_channels: 768 -> 512",
                                    "model.auxiliary_head.in_channels: 384 -> 256"]
    assert backbone_channels(dict(model="nd_dots_imagenet")) == (48, 192, 384, 768)
    levels = backbone_levels(dict(model="nd_dartopti_resnet18_sparse_c100_imagenet"))
    assert levels.out.strides == (2, 4, 8, 16) and levels.in_chans == 3
    # Fields come from the classes' signatures, through **kwargs: FCOSHead's strides are AnchorFreeHead's.
    from mmdet.models.dense_heads import FCOSHead
    from mmseg.models.decode_heads import UPerHead

    from nni_decouple.mm import init_params

    assert init_params(FCOSHead)["strides"].default == (4, 8, 16, 32, 64)
    assert {"in_channels", "in_index", "input_transform"} <= set(init_params(UPerHead))


@pytest.fixture(scope="session")
def mm_data(tmp_path_factory) -> dict[str, Path]:
    from mmdet.datasets import CocoDataset

    return {"CocoDataset": session_dir(tmp_path_factory, "coco",
                                       lambda p: make_coco(p, CocoDataset.METAINFO["classes"])),
            "CityscapesDataset": session_dir(tmp_path_factory, "cityscapes", make_cityscapes)}


def expected_metrics(cfg) -> set[str]:
    """What the config's validation evaluators report."""
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    keys: set[str] = set()
    for ev in evaluators:
        if ev.type == "CocoMetric":
            keys |= {f"coco/{m}_mAP" for m in ([ev.metric] if isinstance(ev.metric, str) else ev.metric)}
        elif ev.type == "IoUMetric":
            keys |= set(ev.iou_metrics)
    return keys


def run_config(config: Path, data: dict[str, Path], work_dir: Path, **options):
    """Build the transfer command's runner for a shipped config, test-sized, on the tiny dataset of
    the config's ``dataset_type``."""
    from mmengine.config import Config

    from nni_decouple.commands.transfer import build_runner

    kind = Config.fromfile(str(config)).dataset_type
    cfg_options = {"model.backbone.init_cfg": None, "model.backbone.model_kwargs": SMALL, **options}
    size = COCO_SIZE if kind == "CocoDataset" else CITYSCAPES_SIZE
    args = argparse.Namespace(config=str(config), work_dir=str(work_dir), data_root=str(data[kind]),
                              cfg_options=cfg_options, resume=None, test=None, amp=False,
                              auto_scale_lr=False, launcher="none", smoke=True, smoke_size=size)
    return build_runner(args)


@pytest.mark.parametrize("config", MM_CONFIGS, ids=[c.stem for c in MM_CONFIGS])
def test_shipped_config_trains_and_evaluates(config, mm_data, tmp_path, monkeypatch, record_property):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory but work_dir
    start = time.perf_counter()
    runner, recorder = run_config(config, mm_data, tmp_path / "work")
    runner.train()
    record_property("seconds", round(time.perf_counter() - start, 1))
    assert runner.iter == 2
    want = expected_metrics(runner.cfg)
    assert want and want <= set(recorder.metrics), f"{config.name}: got {sorted(recorder.metrics)}"
    for key in want:
        value = float(recorder.metrics[key])
        assert -1.0 <= value <= 100.0, (key, value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


# ----------------------------------------------------------------------------- upstream configs x backbones
def upstream_config(scope: str, path: str) -> Path:
    """A config as the installed mmdet / mmseg ship it (their ``.mim/configs``), not a copy."""
    import importlib

    found = Path(importlib.import_module(scope).__file__).parent / ".mim" / "configs" / path
    assert found.is_file(), found
    return found


#: (scope, upstream config, dataset type): the detectors and segmentors the issue names.
UPSTREAM = {
    "retinanet": ("mmdet", "retinanet/retinanet_r50_fpn_1x_coco.py", "CocoDataset"),
    "faster-rcnn": ("mmdet", "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", "CocoDataset"),
    "fcos": ("mmdet", "fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py", "CocoDataset"),
    "mask-rcnn": ("mmdet", "mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py", "CocoDataset"),
    "fcn": ("mmseg", "fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py", "CityscapesDataset"),
    "deeplabv3": ("mmseg", "deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py", "CityscapesDataset"),
    "upernet": ("mmseg", "upernet/upernet_r50_4xb2-40k_cityscapes-512x1024.py", "CityscapesDataset"),
    "pspnet": ("mmseg", "pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py", "CityscapesDataset"),
}

#: What each backbone kind does in a detector / a segmentor: trains, or is refused with this phrase.
#: ImageNet stem: strides 4-32, what both were designed for. CIFAR stem: 3 levels (strides 1, 2, 4), so
#: the usual out_indices (0, 1, 2, 3) ask for a level it does not have. DARTOpti (stride-4 ImageNet
#: stem): strides 2-16, which no FPN start level turns into a detector's 8-128; a segmentor's heads
#: resize to the image and take them. One input channel: the configs feed RGB (three means).
OUTCOME = {
    ("mmdet", "imagenet"): None, ("mmseg", "imagenet"): None,
    ("mmdet", "cifar"): "model.backbone.out_indices=(0, 1, 2, 3) asks for level 3",
    ("mmseg", "cifar"): "model.backbone.out_indices=(0, 1, 2, 3) asks for level 3",
    ("mmdet", "dartopti"): "expects features at strides", ("mmseg", "dartopti"): None,
    ("mmdet", "gray"): "the backbone reads 1 input channel", ("mmseg", "gray"): "the backbone reads 1 input channel",
    ("mmdet", "gray-input"): None,
    # mmseg's training pipeline distorts colours (PhotoMetricDistortion): named, with the fix.
    ("mmseg", "gray-input"): "PhotoMetricDistortion needs colour images",
}


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Two small networks written by ``nni-decouple export`` as a user would: a CIFAR-stem one and a
    one-channel ImageNet-stem one (an MNIST-like input)."""
    from nni_decouple.cli import main

    def build(path: Path) -> None:
        source = str(REPO / "backbones" / "dots_c10.json")
        common = ["--channels", "16", "--layers", "5", "--dir", str(path)]
        assert main(["export", source, "--name", "small_cifar", "--stem", "cifar", *common]) == 0
        assert main(["export", source, "--name", "small_gray", "--stem", "imagenet", "--in-chans", "1",
                     *common]) == 0

    path = session_dir(tmp_path_factory, "exports", build)
    return {"cifar": path / "small_cifar.json", "gray": path / "small_gray.json"}


def backbone_options(kind: str, exports: dict[str, Path]) -> list[str]:
    small = ["model.backbone.model_kwargs.channels=16", "model.backbone.model_kwargs.layers=5"]
    if kind == "imagenet":
        return ["model.backbone.model=nd_dots_imagenet", *small]
    if kind == "dartopti":  # a per-layer genotype: its 4 cells fix the depth, the width is free
        return ["model.backbone.model=nd_dartopti_resnet18_sparse_c100_imagenet", small[0]]
    if kind == "gray-input":
        return [f"model.backbone.model={exports['gray']}", *GRAY_INPUT]
    return [f"model.backbone.model={exports[kind]}"]


def user_config(tmp_path: Path, scope: str, path: str) -> Path:
    """What a user writes to put a searched backbone into an upstream config: inherit it, swap the backbone."""
    config = tmp_path / f"my_{Path(path).name}"
    pretrained = "pretrained=None, " if scope == "mmseg" else ""
    config.write_text(
        f"_base_ = ['{scope}::{path}']\n"
        "custom_imports = dict(imports=['nni_decouple.mm'], allow_failed_imports=False)\n"
        f"model = dict({pretrained}backbone=dict(_delete_=True, type='NNIDecoupleBackbone', model='nd_dots_imagenet', "
        "out_indices=(0, 1, 2, 3), init_cfg=None))\n")
    return config


#: Where one channel can work: the user feeds grayscale (a one-value mean), transfer loads images so.
GRAY_INPUT = ["model.data_preprocessor.mean=[123.675]", "model.data_preprocessor.std=[58.395]"]
MATRIX = [(name, kind) for name in UPSTREAM for kind in ("imagenet", "cifar", "dartopti", "gray")] + [
    ("retinanet", "gray-input"), ("fcn", "gray-input")]


@pytest.mark.parametrize(("name", "kind"), MATRIX, ids=[f"{n}-{k}" for n, k in MATRIX])
def test_upstream_config_with_any_backbone(name, kind, mm_data, exports, tmp_path, monkeypatch, capsys,
                                           record_property):
    """Each upstream config with each kind of backbone trains two iterations and validates, or is refused
    before the Runner in one line, leaving nothing behind."""
    from mmengine.config import Config

    from nni_decouple.cli import main

    scope, path, kind_of_data = UPSTREAM[name]
    upstream_config(scope, path)
    monkeypatch.chdir(tmp_path)
    config = user_config(tmp_path, scope, path)
    size = "96x72" if kind_of_data == "CocoDataset" else "128x64"
    work = tmp_path / "work"
    start = time.perf_counter()
    code = main(["transfer", str(config), "--smoke", "--smoke-size", size, "--data-root", str(mm_data[kind_of_data]),
                 "--work-dir", str(work), "--cfg-options", *backbone_options(kind, exports)])
    record_property("seconds", round(time.perf_counter() - start, 1))
    out, err = capsys.readouterr()
    refusal = OUTCOME[(scope, kind)]
    if refusal is None:
        assert code == 0, err[-2000:]
        metrics = json.loads((work / "metrics.json").read_text())
        want = expected_metrics(Config.fromfile(str(config)))
        assert want <= set(metrics), sorted(metrics)
        assert all(-1.0 <= float(metrics[k]) <= 100.0 for k in want)
        assert {"iter_2.pth", "epoch_2.pth"} & {p.name for p in work.iterdir()}  # the loop's 2 iterations ran
    else:
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nni-decouple transfer: error: ") and refusal in lines[0], err
        assert "Traceback" not in out + err
        assert not work.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([config.name, *(["work"] if refusal is None else [])])
