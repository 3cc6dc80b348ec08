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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError

LAUNCHERS = ("auto", "none", "pytorch", "slurm", "mpi")


class _DictAction(argparse.Action):
    """mmengine's ``DictAction`` (``KEY=VALUE`` pairs read as mm's tools read them), imported only when the
    option is given, so that building the CLI's parser does not import mmengine."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from mmengine.config import DictAction

        DictAction(self.option_strings, self.dest, nargs=self.nargs)(parser, namespace, values, option_string)


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
    parser.add_argument("--cfg-options", nargs="+", action=_DictAction, default=None, metavar="KEY=VALUE",
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


def load_config(path: str, cfg_options: dict[str, Any] | None = None, data_root: str | None = None,
                work_dir: str | None = None) -> Any:
    """Read an mm config and apply the command-line changes, in the order mm's train.py does."""
    from mmengine.config import Config

    from ..mm import sync_in_channels

    if not Path(path).is_file():
        raise ConfigError(f"config {path!r} does not exist (the shipped ones are in configs/mmdet and configs/mmseg)")
    try:
        cfg = Config.fromfile(path)
    except (SyntaxError, FileNotFoundError, KeyError, ImportError) as e:
        raise ConfigError(f"cannot read config {path!r}: {e}") from e
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root is not None:
        replace_data_root(cfg, data_root)
    for change in sync_in_channels(cfg):
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

    cfg = load_config(args.config, args.cfg_options, args.data_root, args.work_dir)
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


def run(args: argparse.Namespace) -> int:
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
