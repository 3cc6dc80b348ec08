"""``nni-decouple train GENOTYPE_OR_NAME --dataset ...``: retrain a searched network from scratch.

DARTS' evaluation recipe is the default (CIFAR: 600 epochs, batch 96, SGD lr 0.025 cosine, weight
decay 3e-4, cutout 16, auxiliary weight 0.4, drop path 0.2, 36 channels, 20 cells; ImageNet: 250
epochs, batch 128, lr 0.1 x 0.97 per epoch, weight decay 3e-5, label smoothing 0.1, 48 channels,
14 cells), chosen by the dataset's resolution; every value has a flag. The run directory gets
``model.pth`` (timm-loadable weights), ``genotype.json`` (the genotype and the network trained),
``results.json``, ``checkpoints/last.ckpt`` (for ``--resume``), ``logs/metrics.csv`` and ``tensorboard/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..io import atomic_write_json, prepare_run_dir
from ..models.genotype import Genotype
from ..options import DATASET_NAMES, STEMS, need_seed, need_whole
from ..runner.train_config import RECIPE_FLAGS, RECIPES, TRAIN_OUTPUTS
from ._architecture import resolve

_RECIPE_FLAGS = {flag.replace("-", "_"): field for field, flag in RECIPE_FLAGS.items()}  # argparse dest -> field


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="retrain a searched network from scratch (DARTS' evaluation recipe)",
        description="Retrains with DARTS' evaluation recipe by default (CIFAR: 600 epochs, batch 96, SGD lr 0.025 "
                    "cosine, weight decay 3e-4, cutout 16, auxiliary weight 0.4, drop path 0.2, 36 channels, 20 cells; "
                    "ImageNet: 250 epochs, batch 128, lr 0.1 x 0.97 per epoch, weight decay 3e-5, label smoothing 0.1, "
                    "48 channels, 14 cells); every value has a flag. Writes OUT/model.pth (loads with timm), "
                    "genotype.json, results.json, checkpoints/last.ckpt, logs/metrics.csv and tensorboard/.")
    parser.add_argument("source", metavar="GENOTYPE_OR_NAME",
                        help="preset or export name (e.g. darts_v2), genotype/backbone file, or search run directory")
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="mnist5k", choices=DATASET_NAMES, help="default: the bundled MNIST-5k")
    g.add_argument("--data-root", default=None, help="dataset root for cifar10/cifar100/imagenet/imagefolder")
    g.add_argument("--train-limit", type=int, default=None, metavar="N", help="train on N images only")
    g.add_argument("--num-workers", type=int, default=0)
    g = parser.add_argument_group("recipe (defaults: DARTS' CIFAR or ImageNet recipe, by the dataset)")
    g.add_argument("--recipe", default=None, metavar="FILE|" + "|".join(sorted(RECIPES)),
                   help="YAML file of option defaults (with _base_ inheritance, as in search; flags on the command "
                        f"line win), or a published recipe by name ({', '.join(sorted(RECIPES))}); "
                        "unset: the recipe of the dataset's resolution")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="initial SGD learning rate")
    g.add_argument("--lr-min", type=float, help="final learning rate of the cosine schedule")
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--grad-clip", type=float, help="gradient norm clip (0: off)")
    g.add_argument("--scheduler", choices=["cosine", "step"])
    g.add_argument("--lr-gamma", type=float, help="per-epoch decay of the step scheduler")
    g.add_argument("--cutout", type=int, help="cutout square side (0: off)")
    g.add_argument("--auxiliary-weight", type=float, help="auxiliary head loss weight (0: no auxiliary head)")
    g.add_argument("--drop-path", type=float, help="final drop-path probability")
    g.add_argument("--label-smoothing", type=float)
    g = parser.add_argument_group("network")
    g.add_argument("--channels", type=int, help="initial channels C")
    g.add_argument("--layers", type=int, help="cells (per-layer genotypes fix it)")
    g.add_argument("--stem", choices=STEMS)
    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--devices", type=int, default=1, help="processes (DDP; gloo on the CPU)")
    g.add_argument("--out", default=None, help="run directory (default: runs/train-NAME-DATASET)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--force", action="store_true",
                   help="replace the run in --out (deletes its outputs first; keeps other files)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    for action in parser._actions:  # the recipe flags' defaults: the published recipes' values
        field = _RECIPE_FLAGS.get(action.dest)
        if field is not None and action.default is None:
            values = ", ".join(f"{getattr(recipe, field)} {name}" for name, recipe in sorted(RECIPES.items()))
            action.help = f"{action.help or ''} (default: the recipe's: {values})".lstrip()
    parser.set_defaults(func=run, subparser=parser, named_recipes=tuple(RECIPES))


def _rounded(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in values)


def check_same_training(run_dir: Path, genotype: Genotype) -> None:
    """``--resume`` continues the run in ``run_dir`` only with its architecture, network, recipe (but the
    number of epochs, which a resume may extend) and seed; its genotype.json is not overwritten otherwise."""
    path = run_dir / "genotype.json"
    try:
        saved = Genotype.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:  # missing, not JSON, or not a genotype
        raise CheckpointError(f"--resume: {str(path)!r} cannot be read ({type(e).__name__}): this is not a run of "
                              f"'nni-decouple train'; start a new run with another --out") from None

    def recipe(meta: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in (meta.get("recipe") or {}).items() if k != "epochs"}

    differ = [name for name, same in (
        ("architecture", saved == genotype),  # the cells (meta is not compared)
        ("network", saved.meta.get("network") == genotype.meta["network"]),
        ("recipe", recipe(saved.meta) == recipe(genotype.meta)),
        ("seed", saved.meta.get("seed") == genotype.meta["seed"])) if not same]
    if differ:
        raise CheckpointError(f"--resume: the run in {str(run_dir)!r} trained with another {', '.join(differ)} "
                              f"(see its genotype.json); resume with the same arguments or start a new run")


def run(args: argparse.Namespace, trainer_kwargs: dict[str, Any] | None = None) -> int:
    from ..data import build_datasets
    from ..models.network import DartsNetwork
    from ..models.timm_models import dataset_stats, network_config
    from ..runner.retrain import retrain

    need_whole("devices", args.devices, 1)
    need_whole("num-workers", args.num_workers, 0)
    need_seed(args.seed)
    arch = resolve(args.source)
    train_set, val_set, info = build_datasets(args.dataset, args.data_root, args.train_limit, args.seed,
                                              augment=True)
    named = args.recipe if args.recipe in RECIPES else None  # a YAML recipe has set the flags' defaults
    base = RECIPES[named or ("imagenet" if info.stem == "imagenet" else "cifar")]
    recipe = base.replace(**{field: getattr(args, flag) for flag, field in _RECIPE_FLAGS.items()})
    layers = len(arch.genotype.layers) if arch.genotype.per_layer and args.layers is None else recipe.layers
    recipe = replace(recipe, layers=layers)
    network = network_config(arch.genotype, stem=recipe.stem, channels=recipe.channels, layers=recipe.layers,
                             num_classes=info.num_classes, in_chans=info.in_chans, input_size=info.image_size,
                             dataset=info.name)
    model = DartsNetwork(arch.genotype, network["channels"], network["layers"], network["num_classes"],
                         network["in_chans"], network["stem"], aux_head=recipe.auxiliary_weight > 0)
    # Everything that can be wrong with the input is checked above: only now is the run directory made.
    run_dir = prepare_run_dir(Path(args.out or f"runs/train-{arch.label}-{args.dataset}"), resume=args.resume,
                              force=args.force, outputs=TRAIN_OUTPUTS)
    meta = {k: v for k, v in arch.genotype.meta.items() if k not in ("models", "network")}
    meta.update(network=network, trained_from=args.source, recipe=dataclasses.asdict(recipe), seed=args.seed)
    genotype = replace(arch.genotype, meta=meta)
    if args.resume:
        check_same_training(run_dir, genotype)
    atomic_write_json(run_dir / "genotype.json", genotype.to_dict())

    print(f"training {arch.label} on {info.name} ({len(train_set)} train / {len(val_set)} test images): "
          f"{network['channels']} channels, {network['layers']} cells, {recipe.epochs} epochs -> {run_dir}")
    results = retrain(model, recipe, train_set, val_set, run_dir, seed=args.seed, devices=args.devices,
                      num_workers=args.num_workers, progress_bar=not args.no_progress, resume=args.resume,
                      trainer_kwargs=trainer_kwargs)
    acc = results.get("val_acc")
    chance = 1.0 / info.num_classes
    print(f"\ntest accuracy {acc:.2%} (chance {chance:.0%}) after {recipe.epochs} epochs, {results['seconds']:.0f} s"
          if acc is not None else "\nno validation result")
    weights = run_dir / "model.pth"
    print(f"written: {weights}, {run_dir / 'genotype.json'}, results.json, checkpoints/, logs/, tensorboard/")
    size = (network["in_chans"], network["input_size"], network["input_size"])
    if arch.timm_name:
        # The overlay says how these weights were trained: their file, classes, input size and normalisation.
        mean, std = (info.mean, info.std) if info.mean else dataset_stats(info.name, info.in_chans)
        print("load it with timm (Python):")
        print("    import nni_decouple, timm")
        print(f"    model = timm.create_model({arch.timm_name!r}, pretrained=True, pretrained_cfg_overlay=dict("
              f"file={str(weights)!r}, num_classes={network['num_classes']}, input_size={size}, "
              f"mean={_rounded(mean)}, std={_rounded(std)}), num_classes={network['num_classes']}, "
              f"in_chans={network['in_chans']}, stem={network['stem']!r}, channels={network['channels']}, "
              f"layers={network['layers']})")
    print(f"or export it as a named backbone: nni-decouple export {run_dir} --name NAME")
    return 0
