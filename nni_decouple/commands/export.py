"""``nni-decouple export RUN_DIR_OR_GENOTYPE --name NAME [--weights CKPT]``: a search or training result
becomes a named timm backbone.

The export is written to the user backbone directory (:func:`nni_decouple.models.timm_models.user_dir`:
``$NNI_DECOUPLE_HOME/backbones``, else ``~/.cache/nni-decouple/backbones``) as ``NAME.json`` (the
genotype and its network), ``NAME.pth`` (the weights, when given or when the run directory has
``model.pth`` from ``nni-decouple train``) and ``NAME.md`` (its card). Importing ``nni_decouple``
registers it as ``nd_NAME``: ``timm.create_model('nd_NAME', pretrained=True)`` builds it with its
weights, and the mm backbone selects it by that name. An existing export is only replaced with ``--force``.
"""

from __future__ import annotations

import argparse
import datetime
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, ConfigError, OutputExistsError
from ..io import atomic_write_text
from ..options import STEMS
from ._architecture import Architecture, network_for, resolve

if TYPE_CHECKING:  # torch and the network are imported when an export runs, not to build the CLI's parser
    import torch

    from ..models.network import DartsNetwork


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="turn a search or training result into a named timm backbone",
        description="Writes NAME.json (the genotype and its network), NAME.pth (the weights: --weights, or "
                    "RUN_DIR/model.pth of `nni-decouple train`) and NAME.md (its card) to $NNI_DECOUPLE_HOME/backbones "
                    "(default ~/.cache/nni-decouple/backbones). `import nni_decouple` registers it with timm as "
                    "nd_NAME. An existing export is replaced only with --force.")
    parser.add_argument("source", metavar="RUN_DIR_OR_GENOTYPE",
                        help="search or train run directory, genotype/backbone file, or a preset name")
    parser.add_argument("--name", required=True, help="backbone name; registered with timm as nd_NAME")
    parser.add_argument("--weights", default=None, metavar="CKPT",
                        help="weights to ship (model.pth of `nni-decouple train`, or its Lightning checkpoint); "
                             "default: RUN_DIR/model.pth when present")
    g = parser.add_argument_group("network (default: as trained, else DARTS' evaluation network for the data)")
    g.add_argument("--dataset", default=None, help="dataset the network is for (sets classes, channels, size)")
    g.add_argument("--stem", choices=STEMS, default=None)
    g.add_argument("--channels", type=int, default=None, help="initial channels C (DARTS: 36 CIFAR, 48 ImageNet)")
    g.add_argument("--layers", type=int, default=None, help="cells (DARTS: 20 CIFAR, 14 ImageNet)")
    g.add_argument("--num-classes", type=int, default=None)
    g.add_argument("--in-chans", type=int, default=None)
    g.add_argument("--input-size", type=int, default=None, help="image side the network is meant for")
    parser.add_argument("--dir", default=None, help="backbone directory (default: $NNI_DECOUPLE_HOME/backbones)")
    parser.add_argument("--force", action="store_true", help="replace an existing export of this name")
    parser.set_defaults(func=run)


def load_weights(path: Path, model: DartsNetwork) -> dict[str, torch.Tensor]:
    """A state dict from ``model.pth`` or a Lightning checkpoint that fits ``model`` exactly."""
    from timm.models import load_state_dict

    from ..models.network import checkpoint_filter_fn

    if not path.is_file():
        raise CheckpointError(f"weights {str(path)!r} do not exist: check --weights")
    try:
        state = load_state_dict(str(path), weights_only=True)
    except Exception as e:  # torch raises several types for a file that is not a weights-only checkpoint
        raise CheckpointError(f"{str(path)!r} is not a readable weights file ({type(e).__name__}: {e})") from None
    state = checkpoint_filter_fn(state, model)
    fix = "pass the --channels, --layers, --stem, --num-classes and --in-chans it was trained with"
    expected = model.state_dict()
    wrong = [k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if wrong or missing or unexpected:
        example = (wrong or missing or unexpected)[0]
        raise CheckpointError(
            f"weights {str(path)!r} do not fit this network ({len(wrong)} tensors of another shape, "
            f"{len(missing)} missing, {len(unexpected)} unexpected, e.g. {example}): {fix}"
        )
    model.load_state_dict(state)
    return state


def export(arch: Architecture, name: str, *, weights: Path | None, network: dict[str, Any],
           directory: Path | None = None, force: bool = False) -> dict[str, Any]:
    """Write ``NAME.json``, ``NAME.pth`` (with weights) and ``NAME.md``; register ``nd_NAME``; return paths."""
    from ..models.cards import count_macs, count_params, model_card
    from ..models.network import DartsNetwork, preset_names
    from ..models.timm_models import model_name_for, network_config, register_genotype, user_dir
    from ..runner.retrain import save_weights

    model_name = model_name_for(name)
    if model_name in preset_names():
        raise ConfigError(f"{model_name!r} is a released preset: choose another --name")
    stem_name = model_name.removeprefix("nd_")
    directory = Path(directory) if directory is not None else user_dir()
    paths = {kind: directory / f"{stem_name}.{kind}" for kind in ("json", "pth", "md")}
    if paths["json"].exists() and not force:
        raise OutputExistsError(f"an export named {stem_name!r} exists ({paths['json']}): pass --force to replace it "
                                f"or choose another --name")
    keys = ("stem", "channels", "layers", "num_classes", "in_chans", "input_size", "dataset")
    entry = network_config(arch.genotype, **{k: network[k] for k in keys if k in network})
    model = DartsNetwork(arch.genotype, entry["channels"], entry["layers"], entry["num_classes"],
                         entry["in_chans"], entry["stem"])
    if weights is not None:
        load_weights(weights, model)
        entry["weights"] = paths["pth"].name
    meta = {k: v for k, v in arch.genotype.meta.items() if k not in ("models", "network")}
    meta.update(models={model_name: entry}, exported_from=str(arch.run_dir or arch.label),
                exported=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    if weights is not None:
        meta["weights_from"] = str(weights)
    genotype = replace(arch.genotype, meta=meta)

    directory.mkdir(parents=True, exist_ok=True)
    if weights is not None:
        save_weights(model, paths["pth"])
    elif paths["pth"].exists():  # a --force export without weights must not keep stale ones
        paths["pth"].unlink()
    size = (entry["in_chans"], entry["input_size"], entry["input_size"])
    row = dict(entry, name=model_name, params=count_params(model), macs=count_macs(model, size))
    about = {"Exported from": meta["exported_from"], "Weights": str(weights) if weights else "none (random init)",
             "Searched with": str(meta.get("method", "")), "Searched on": str(meta.get("dataset", ""))}
    atomic_write_text(paths["md"], model_card(stem_name, genotype, [row], about=about))
    atomic_write_text(paths["json"], genotype.to_json() + "\n")  # last: the export exists once this is written
    register_genotype(model_name, genotype, file=paths["pth"] if weights is not None else None, replace=True,
                      **{k: entry[k] for k in keys if k in entry})
    return {"model_name": model_name, "params": row["params"], "macs": row["macs"], "weights": weights is not None,
            "feature_info": [dict(level) for level in model.feature_info],
            **{kind: str(path) for kind, path in paths.items()}}


def usage_lines(model_name: str, weights: bool, feature_info: list[dict[str, Any]],
                directory: str | None = None) -> list[str]:
    """Python lines that load the export, runnable as printed: the feature levels are the network's own
    (``feature_info``: three for a CIFAR/MNIST stem, four for an ImageNet stem); the backbone takes the
    last three, the ones a detector's neck reads."""
    levels = list(range(len(feature_info)))[-3:]
    strides = ", ".join(str(feature_info[i]["reduction"]) for i in levels)
    channels = ", ".join(str(feature_info[i]["num_chs"]) for i in levels)
    lines = ["import nni_decouple, timm"]
    if directory is not None:
        lines.append(f"nni_decouple.models.timm_models.register_exports({directory!r})")
    lines.append(f"model = timm.create_model({model_name!r}, pretrained={weights})")
    lines.append(f"backbone = timm.create_model({model_name!r}, features_only=True, out_indices={tuple(levels)})"
                 f"  # strides {strides}; channels {channels}")
    return lines


def run(args: argparse.Namespace) -> int:
    arch = resolve(args.source)
    weights = Path(args.weights) if args.weights else None
    if weights is None and arch.run_dir is not None and (arch.run_dir / "model.pth").is_file():
        weights = arch.run_dir / "model.pth"
    overrides = {"dataset": args.dataset, "stem": args.stem, "channels": args.channels, "layers": args.layers,
                 "num_classes": args.num_classes, "in_chans": args.in_chans, "input_size": args.input_size}
    network = network_for(arch, overrides)
    result = export(arch, args.name, weights=weights, network=network,
                    directory=Path(args.dir) if args.dir else None, force=args.force)
    name = result["model_name"]
    print(f"exported {name}: {result['params'] / 1e6:.3f}M params, {result['macs'] / 1e6:.1f}M MACs"
          f"{', with weights' if result['weights'] else ', no weights'}")
    print(f"written: {result['json']}, {result['md']}" + (f", {result['pth']}" if result["weights"] else ""))
    print("use it (Python):")
    for line in usage_lines(name, result["weights"], result["feature_info"], args.dir):
        print(f"    {line}")
    print(f"OpenMMLab configs select it by the same model name, {name!r}")
    return 0
