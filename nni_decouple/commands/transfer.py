"""``nni-decouple transfer CONFIG``: train and evaluate an mmdetection / mmsegmentation config.

What OpenMMLab's ``tools/train.py`` does (the pip packages do not ship it): read the config, apply
``--cfg-options``, pick the work directory, build mmengine's ``Runner`` and train, validating on the
config's schedule. Added for searched backbones: the neck's / heads' ``in_channels`` follow the
backbone (so swapping the backbone is one line), ``--data-root`` moves every dataset path at once,
and ``torchrun`` is detected, so several GPUs or machines need no extra flag::

    torchrun --nproc-per-node 8 -m nni_decouple.cli transfer CONFIG
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --master-port 29500 --nproc-per-node 8 \\
        -m nni_decouple.cli transfer CONFIG
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError

LAUNCHERS = ("auto", "none", "pytorch", "slurm", "mpi")


#: What ``transfer`` says when OpenMMLab is not installed (``pip install .`` without the ``[mm]`` extra).
MM_MISSING = ("transfer needs OpenMMLab (mmengine, mmcv, mmdet, mmsegmentation), which is not installed here: "
              "pip install \"nni-decouple[mm]\" (in a checkout: pip install \".[mm]\"; mmcv 2.1.0 needs a wheel "
              "with ops for your torch, which scripts/bootstrap.sh builds)")

#: ``--smoke``: training iterations, images per split and batch size.
SMOKE_ITERS = 2
SMOKE_IMAGES = 2


class _KeyValues(argparse.Action):
    """``--cfg-options KEY=VALUE ...`` kept as text: mmengine (which parses the values) is imported
    only when ``transfer`` runs, so the CLI starts without OpenMMLab."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        bad = [v for v in values if "=" not in v or v.startswith("=")]
        if bad:
            parser.error(f"{option_string} takes KEY=VALUE pairs, got {bad[0]!r}")
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), *values])


def parse_cfg_options(pairs: list[str] | dict[str, Any] | None) -> dict[str, Any] | None:
    """``KEY=VALUE`` texts as mm's ``tools/train.py`` reads them (mmengine's ``DictAction``: lists,
    tuples, numbers, ``None``, booleans); a dict is returned as it is."""
    if pairs is None or isinstance(pairs, Mapping):
        return dict(pairs) if pairs is not None else None
    from mmengine.config import DictAction

    options: dict[str, Any] = {}
    for pair in pairs:
        key, value = pair.split("=", maxsplit=1)
        options[key] = DictAction._parse_iterable(value)
    return options


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 128x128, got {text!r}") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"--smoke-size must be at least 32x32, got {text!r}")
    return w, h


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transfer", help="train and evaluate a searched backbone in an mmdetection / mmsegmentation config",
        description="Train and evaluate an OpenMMLab config (configs/mmdet, configs/mmseg) with mmengine's "
                    "Runner, like mm's tools/train.py. Several GPUs or machines: start it with torchrun "
                    "(torchrun --nproc-per-node N -m nni_decouple.cli transfer CONFIG).")
    parser.add_argument("config", help="mmdet / mmseg config file (e.g. configs/mmdet/retinanet_nd-dots-imagenet_"
                                       "fpn_1x_coco.py)")
    parser.add_argument("--work-dir", default=None,
                        help="logs and checkpoints (default: the config's work_dir, else ./work_dirs/CONFIG_NAME)")
    parser.add_argument("--data-root", default=None,
                        help="dataset root: replaces the config's data_root in every dataset and evaluator path")
    parser.add_argument("--cfg-options", nargs="+", action=_KeyValues, default=None, metavar="KEY=VALUE",
                        help="override config entries, e.g. model.backbone.model=nd_darts_v2_imagenet "
                             "model.backbone.init_cfg.checkpoint=runs/train/model.pth train_dataloader.batch_size=4")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                        help="resume training: from CHECKPOINT, or (no value) from the work dir's latest")
    parser.add_argument("--test", default=None, metavar="CHECKPOINT",
                        help="evaluate CHECKPOINT on the config's test split instead of training")
    parser.add_argument("--amp", action="store_true", help="mixed precision training (AmpOptimWrapper)")
    parser.add_argument("--auto-scale-lr", action="store_true",
                        help="scale the learning rate by the total batch size (the config's auto_scale_lr)")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="auto",
                        help="job launcher; auto: 'pytorch' under torchrun (WORLD_SIZE > 1), else none")
    parser.add_argument("--smoke", action="store_true",
                        help=f"check a backbone before a real run: {SMOKE_ITERS} iterations and one validation on "
                             f"{SMOKE_IMAGES} images of the given data, at --smoke-size, no workers, necks and heads "
                             f"4x narrower, every detection kept")
    parser.add_argument("--smoke-size", type=_size, default=(128, 128), metavar="WxH",
                        help="image size of --smoke (default 128x128)")
    parser.set_defaults(func=run)


def resolve_launcher(launcher: str, environ: dict[str, str] | None = None) -> str:
    """``auto`` means ``pytorch`` when torchrun started several processes, else ``none``."""
    environ = dict(os.environ if environ is None else environ)
    if launcher != "auto":
        return launcher
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
    except ValueError:
        world = 1
    return "pytorch" if world > 1 and "LOCAL_RANK" in environ else "none"


def _walk(value: Any, fn: Callable[[str], str]) -> Any:
    """Apply ``fn`` to every string inside nested dicts, lists and tuples, in place where mutable."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        for k in list(value):
            value[k] = _walk(value[k], fn)
        return value
    if isinstance(value, list):
        for i, v in enumerate(value):
            value[i] = _walk(v, fn)
        return value
    if isinstance(value, tuple):
        return type(value)(_walk(v, fn) for v in value)
    return value


def replace_data_root(cfg: Any, new_root: str) -> int:
    """Replace the config's ``data_root`` prefix in every string of ``cfg``; return how many changed.

    Upstream configs join ``data_root`` into dataset roots, annotation files and evaluator paths when
    the file is read, so overriding ``data_root`` alone would leave those behind.
    """
    old = cfg.get("data_root")
    if not isinstance(old, str) or not old:
        raise ConfigError("the config defines no data_root, so --data-root has nothing to replace: "
                          "set the dataset paths with --cfg-options")
    if not Path(new_root).is_dir():
        raise DataError(f"--data-root {new_root!r} is not a directory")
    old_base = old.rstrip("/")
    new_base = str(new_root).rstrip("/")
    count = 0

    def swap(text: str) -> str:
        nonlocal count
        if text == old_base or text.startswith(old_base + "/"):
            count += 1
            return new_base + text[len(old_base):]
        return text

    for key in list(cfg.keys()):
        cfg[key] = _walk(cfg[key], swap)
    return count


def load_config(path: str, cfg_options: dict[str, Any] | list[str] | None = None, data_root: str | None = None,
                work_dir: str | None = None, smoke: tuple[int, int] | None = None) -> Any:
    """Read an mm config and apply the command-line changes, in the order mm's train.py does, then fit
    it to its backbone (:func:`nni_decouple.mm.fit_to_backbone`). ``smoke`` (w, h) shrinks the file's
    config first (:func:`smoke_config`), so ``--cfg-options`` still have the last word."""
    from mmengine.config import Config

    from ..mm import fit_to_backbone

    if not Path(path).is_file():
        raise ConfigError(f"config {path!r} does not exist (the shipped ones are in configs/mmdet and configs/mmseg)")
    try:
        cfg = Config.fromfile(path)
    except (SyntaxError, FileNotFoundError, KeyError, ImportError) as e:
        raise ConfigError(f"cannot read config {path!r}: {e}") from e
    if smoke is not None:
        smoke_config(cfg, smoke)
    cfg_options = parse_cfg_options(cfg_options)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root is not None:
        replace_data_root(cfg, data_root)
    for change in fit_to_backbone(cfg):
        print(f"transfer: {change} (from the backbone)")
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = str(Path("work_dirs") / Path(path).stem)
    return cfg


def _dataset_paths(dataset: Any, where: str) -> Iterator[tuple[str, Path]]:
    """(config key, path) of every annotation file and image / label folder a dataset config reads,
    joined as mmengine's ``BaseDataset`` joins them, through dataset wrappers (Repeat, Concat, ...)."""
    if not isinstance(dataset, Mapping):
        return
    if isinstance(dataset.get("dataset"), Mapping):
        yield from _dataset_paths(dataset["dataset"], f"{where}.dataset")
    for i, inner in enumerate(dataset.get("datasets") or ()):
        yield from _dataset_paths(inner, f"{where}.datasets.{i}")
    root = dataset.get("data_root") or ""
    if isinstance(dataset.get("ann_file"), str) and dataset["ann_file"]:
        yield f"{where}.ann_file", Path(root, dataset["ann_file"])
    prefixes = dataset.get("data_prefix")
    for key, prefix in (prefixes.items() if isinstance(prefixes, Mapping) else ()):
        if isinstance(prefix, str) and prefix:
            yield f"{where}.data_prefix.{key}", Path(root, prefix)


def check_dataset_files(cfg: Any, test: bool = False) -> None:
    """Refuse, before the Runner makes its work directory, a data root that lacks what the config reads.

    mm only opens the files when the first dataloader is built, and then fails with a pycocotools or
    mmengine traceback. Only the loaders that will run are checked: train and val, or test.
    """
    phases = (("test_dataloader", "test_evaluator"),) if test else (
        ("train_dataloader", None), ("val_dataloader", "val_evaluator"))
    missing = []
    for loader, evaluator in phases:
        if not isinstance(cfg.get(loader), Mapping):
            continue
        found = list(_dataset_paths(cfg[loader].get("dataset"), f"{loader}.dataset"))
        metric = cfg.get(evaluator) if evaluator else None
        if isinstance(metric, Mapping) and isinstance(metric.get("ann_file"), str) and metric["ann_file"]:
            found.append((f"{evaluator}.ann_file", Path(metric["ann_file"])))
        missing += [(key, path) for key, path in found if "://" not in str(path) and not path.exists()]
    if missing:
        listed = "; ".join(f"{key} {str(path)!r}" for key, path in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(f"the dataset is not where the config reads it, missing: {listed}{more}. Point "
                        f"--data-root at the folder that holds the config's layout, or set these paths with "
                        f"--cfg-options")


# ----------------------------------------------------------------------------- --smoke
def _walk_dicts(value: Any) -> Iterator[dict]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk_dicts(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk_dicts(v)


def _scaled(scale: Any, w: int, h: int) -> Any:
    """``(w, h)`` for one scale; a list of scales shrunk together so the largest becomes ``(w, h)``."""
    if isinstance(scale, (list, tuple)) and scale and isinstance(scale[0], (list, tuple)):
        f = min(w / max(s[0] for s in scale), h / max(s[1] for s in scale))
        return [(round(s[0] * f), round(s[1] * f)) for s in scale]
    return (w, h)


#: Widths of necks and heads that all derive from the neck's / head's own width.
WIDTH_KEYS = ("in_channels", "out_channels", "feat_channels", "channels", "conv_out_channels", "fc_out_channels")


def _narrow(part: Any, factor: int, keep_in_channels: bool) -> None:
    """Divide every width of a neck or head by ``factor``: they all derive from the same FPN / head
    width, so dividing all of them keeps them consistent. ``in_channels`` fed by the backbone stay."""
    for d in _walk_dicts(part):
        for key in WIDTH_KEYS:
            if key == "in_channels" and keep_in_channels and d is part:
                continue
            if isinstance(d.get(key), int) and d[key] >= 4 * factor:
                d[key] //= factor


def _innermost_datasets(dataset: Any) -> Iterator[dict]:
    """The datasets that read files, through wrappers (RepeatDataset, ConcatDataset, ...)."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get("dataset"), dict):
        yield from _innermost_datasets(dataset["dataset"])
    elif isinstance(dataset.get("datasets"), list):
        for inner in dataset["datasets"]:
            yield from _innermost_datasets(inner)
    else:
        yield dataset


def smoke_config(cfg: Any, size: tuple[int, int] = (128, 128), iters: int = SMOKE_ITERS, images: int = SMOKE_IMAGES,
                 narrow: int = 4) -> None:
    """Shrink any mm config in place to check a backbone before a real run: ``size`` (w, h) images,
    the first ``images`` of each split (mmengine's ``indices``), batches of ``images``, ``iters``
    training iterations then one validation pass, no worker processes, necks and heads ``narrow``
    times narrower (their backbone-fed ``in_channels`` kept), and every detection kept (after a
    few iterations no score passes the usual thresholds, and the evaluators need some)."""
    w, h = size
    for d in _walk_dicts(cfg._cfg_dict if hasattr(cfg, "_cfg_dict") else cfg):
        kind = d.get("type")
        if kind in ("Resize", "RandomResize", "RandomChoiceResize") and "scale" in d:
            d["scale"] = _scaled(d["scale"], w, h)
        elif kind in ("Resize", "RandomResize") and "scale" not in d and "img_scale" in d:
            d["img_scale"] = _scaled(d["img_scale"], w, h)
        elif kind in ("RandomCrop", "FixShapeResize") and "crop_size" in d:
            d["crop_size"] = (h, w)
        elif kind == "RepeatDataset":
            d["times"] = 1
    model = cfg.model
    pre = model.get("data_preprocessor") or {}
    if pre.get("size") is not None:
        pre["size"] = (h, w)
    test_cfg = model.get("test_cfg")
    if isinstance(test_cfg, dict) and test_cfg.get("mode") == "slide":
        test_cfg["crop_size"], test_cfg["stride"] = (h, w), (max(1, h // 2), max(1, w // 2))
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if not isinstance(cfg.get(loader), dict):
            continue
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        # Training: one batch of `images` per epoch (BatchNorm after pooling needs 2 per batch);
        # validation and test keep the config's batch size, capped.
        cfg[loader].batch_size = images if loader == "train_dataloader" else \
            min(int(cfg[loader].get("batch_size", images)), images)
        for dataset in _innermost_datasets(cfg[loader].get("dataset")):
            dataset["indices"] = images
    train = cfg.get("train_cfg") or {}
    if train.get("type") == "IterBasedTrainLoop" or "max_iters" in train:
        train["max_iters"] = iters
        train["val_interval"] = iters
    else:  # one batch per epoch: the first `images` images in batches of `images`
        train["max_epochs"] = iters
        train["val_interval"] = iters
    hooks = cfg.get("default_hooks") or {}
    if isinstance(hooks.get("checkpoint"), dict):
        hooks["checkpoint"]["interval"] = iters
    if isinstance(hooks.get("logger"), dict):
        hooks["logger"]["interval"] = 1
    necks = model.get("neck")
    for neck in necks if isinstance(necks, list) else [necks] if necks else []:
        _narrow(neck, narrow, keep_in_channels=True)
    for key in [k for k in model if k.endswith("head")]:
        heads = model[key] if isinstance(model[key], list) else [model[key]]
        for head in heads:
            # mmseg heads read backbone levels (in_index); mmdet heads read the (narrowed) neck.
            _narrow(head, narrow, keep_in_channels="in_index" in head or not necks)
    for part in ("train_cfg", "test_cfg"):
        for d in _walk_dicts(model.get(part) or {}):
            if "score_thr" in d:
                d["score_thr"] = 0.0
            for key, cap in (("nms_pre", 200), ("max_per_img", 20)):
                if isinstance(d.get(key), int):
                    d[key] = min(d[key], cap)
            if isinstance(d.get("sampler"), dict) and isinstance(d["sampler"].get("num"), int):
                d["sampler"]["num"] = min(d["sampler"]["num"], 64)


def _plain_batch_norm(node: Any) -> int:
    """Replace every ``SyncBN`` norm config under ``node`` by ``BN``; return how many were replaced."""
    count = 0
    if isinstance(node, dict):
        if node.get("type") == "SyncBN":
            node["type"] = "BN"
            count += 1
        for value in node.values():
            count += _plain_batch_norm(value)
    elif isinstance(node, (list, tuple)):
        count += sum(_plain_batch_norm(value) for value in node)
    return count


def _distributed_on_cpu(cfg: Any) -> None:
    """Run a torchrun job on CPUs: mmengine's launcher pins every process to a GPU and wraps the model
    in DDP with GPU ``device_ids``. Join the process group with gloo here (mmengine then skips its
    own set-up) and wrap without device ids. SyncBN only runs on GPUs: it becomes plain BN (every
    process keeps its own batch statistics), and the command says so."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    replaced = _plain_batch_norm(cfg.model)
    if cfg.get("sync_bn"):  # the Runner would convert every BN to SyncBN
        cfg.sync_bn = None
        replaced += 1
    if replaced and dist.get_rank() == 0:
        print(f"transfer: SyncBN needs GPUs; {replaced} SyncBN config(s) run as per-process BN on the CPU")
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False,
                                     find_unused_parameters=cfg.get("find_unused_parameters", False))


def metrics_recorder() -> Any:
    """An mmengine hook that keeps the latest validation / test metrics, for the command's summary
    (defined on call: the CLI imports this module at start-up, mmengine only when it is needed)."""
    from mmengine.hooks import Hook

    class MetricsRecorder(Hook):
        priority = "VERY_LOW"

        def __init__(self) -> None:
            self.metrics: dict[str, Any] = {}

        def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
            self.metrics = dict(metrics or {})

        def after_test_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
            self.metrics = dict(metrics or {})

    return MetricsRecorder()


def build_runner(args: argparse.Namespace, adjust: Callable[[Any], None] | None = None) -> tuple[Any, Any]:
    """The configured :class:`mmengine.runner.Runner` (or the config's ``runner_type``) and the
    hook that records its metrics. ``adjust`` may change the config last, before the Runner is built."""
    import torch
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from ..mm import check_checkpoints

    smoke = getattr(args, "smoke_size", (128, 128)) if getattr(args, "smoke", False) else None
    cfg = load_config(args.config, args.cfg_options, args.data_root, args.work_dir, smoke)
    cfg.launcher = resolve_launcher(args.launcher)
    if cfg.launcher == "pytorch" and not torch.cuda.is_available():
        _distributed_on_cpu(cfg)
    if args.amp:
        wrapper = cfg.optim_wrapper.get("type", "OptimWrapper")
        if wrapper == "AmpOptimWrapper":
            print("transfer: --amp: the config already uses AmpOptimWrapper")
        elif wrapper != "OptimWrapper":
            raise ConfigError(f"--amp needs optim_wrapper.type OptimWrapper, the config has {wrapper}")
        else:
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.loss_scale = "dynamic"
    if args.auto_scale_lr:
        if "auto_scale_lr" not in cfg or "base_batch_size" not in cfg.auto_scale_lr:
            raise ConfigError("--auto-scale-lr: the config has no auto_scale_lr.base_batch_size")
        cfg.auto_scale_lr.enable = True
    if args.test is not None:
        if not Path(args.test).is_file():
            raise ConfigError(f"--test checkpoint {args.test!r} does not exist")
        cfg.load_from = args.test
        cfg.resume = False
    elif args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not Path(args.resume).is_file():
            raise ConfigError(f"--resume checkpoint {args.resume!r} does not exist")
        cfg.resume, cfg.load_from = True, args.resume
    if adjust is not None:
        adjust(cfg)
    check_checkpoints(cfg)
    check_dataset_files(cfg, test=args.test is not None)
    runner = Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)
    recorder = metrics_recorder()
    runner.register_hook(recorder)
    return runner, recorder


def _plain(value: Any) -> float | str:
    """A metric as JSON can hold it (mm returns numpy scalars, e.g. mmseg's mIoU)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def require_mm() -> None:
    """One line, not an ImportError traceback, where OpenMMLab is not installed."""
    import importlib.util

    for name in ("mmengine", "mmcv", "mmdet", "mmseg"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(f"{MM_MISSING} ({name} is missing)")
    try:
        import mmengine  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"{MM_MISSING} ({e})") from e


#: setuptools' deprecation of ``pkg_resources``, which mmengine imports to read a config (``is_installed``):
#: says nothing a user of ``transfer`` can act on, so it is hidden by message while transfer runs.
PKG_RESOURCES_WARNING = "pkg_resources is deprecated as an API"


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PKG_RESOURCES_WARNING, category=UserWarning)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    require_mm()
    from mmengine.dist import is_main_process

    from ..io import atomic_write_json

    runner, recorder = build_runner(args)
    if args.test is not None:
        runner.test()
    else:
        runner.train()
    metrics = {k: _plain(v) for k, v in recorder.metrics.items()}
    if is_main_process():
        if metrics:
            print("transfer: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in metrics.items()))
            atomic_write_json(Path(runner.work_dir) / ("test_metrics.json" if args.test else "metrics.json"),
                              metrics)
        print(f"transfer: logs and checkpoints in {runner.work_dir}")
    return 0
