"""Every architecture as a timm model: the released presets and the user's own exports.

Importing :mod:`nni_decouple` imports this module, which registers

- the presets: the released architectures in ``backbones/`` (``nd_darts_v2``, ``nd_dots_c10``, ...,
  registered by :mod:`nni_decouple.models.network` in timm's model-file style), and
- the user's exports: every backbone written by ``nni-decouple export`` into :func:`user_dir`,
  ``$NNI_DECOUPLE_HOME/backbones`` or, without that variable, ``~/.cache/nni-decouple/backbones``
  (``$XDG_CACHE_HOME`` respected). An export is ``NAME.json`` (the genotype, with the network to
  build in ``meta.models``), ``NAME.pth`` (weights, if exported with them) and ``NAME.md`` (its card).

:func:`register_genotype` registers any genotype in-process. All names carry the prefix ``nd_``,
which no timm model uses. This module imports torch and timm only, never NNI.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from timm.models import generate_default_cfgs, register_model

from ..errors import ConfigError, NNIDecoupleError
from ..options import whole
from .genotype import Genotype
from .network import (
    DartsNetwork,
    _cfg,
    _create_network,
    as_genotype,
    network_defaults,
    plan_network,
    preset_genotype,
    preset_info,
    preset_names,
)

__all__ = ["PREFIX", "user_dir", "model_name_for", "register_genotype", "register_exports", "registered_exports",
           "preset_names", "preset_genotype", "preset_info", "network_config", "model_entry", "DATASET_STATS",
           "dataset_stats"]

PREFIX = "nd_"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: The pretrained cfgs of runtime registrations; timm's ``register_model`` reads this module's ``default_cfgs``.
default_cfgs: dict[str, Any] = {}
_exports: dict[str, Path] = {}  # model name -> backbone json of user exports registered from disk

#: How each dataset the project trains on is normalised (``nni_decouple.data``): per-channel mean and std
#: of pixels in [0, 1], timm's convention. MNIST-5k and digits are normalised with their own statistics
#: (one value for all pixels); tests/models/test_timm_models.py checks these against the data.
DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist5k": ((0.1313,), (0.3086,)),
    "digits": ((0.3053,), (0.3761,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def user_dir() -> Path:
    """Where ``nni-decouple export`` writes backbones, and where they are registered from."""
    home = os.environ.get("NNI_DECOUPLE_HOME")
    if home:
        return Path(home).expanduser() / "backbones"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "nni-decouple" / "backbones"


def model_name_for(name: str) -> str:
    """``NAME`` -> ``nd_NAME`` (kept as is if it already has the prefix); rejects names timm cannot use."""
    model_name = name if name.startswith(PREFIX) else PREFIX + name
    if not _NAME.fullmatch(model_name):
        raise ConfigError(f"backbone name {name!r} is not usable: use lower-case letters, digits and '_', "
                          f"starting with a letter (e.g. 'dots_mnist')")
    return model_name


def network_config(genotype: Genotype, *, stem: str = "cifar", channels: int | None = None,
                   layers: int | None = None, num_classes: int = 10, in_chans: int = 3,
                   input_size: int | None = None, dataset: str | None = None) -> dict[str, Any]:
    """The ``meta.models`` entry of a backbone: the network to build, with DARTS' defaults filled in."""
    channels, layers = network_defaults(genotype, channels, layers, stem)
    plan_network(genotype, channels, layers, stem)  # validates the combination now, not at first use
    if input_size is not None and not whole(input_size, 1):
        raise ConfigError(f"input_size must be an integer >= 1, got {input_size!r}")
    entry: dict[str, Any] = {"stem": stem, "channels": channels, "layers": layers, "num_classes": num_classes,
                             "in_chans": in_chans, "input_size": input_size or (32 if stem == "cifar" else 224)}
    if dataset:
        entry["dataset"] = dataset
    return entry


def _pretrained_cfg(genotype: Genotype, entry: dict[str, Any], file: str | None) -> dict[str, Any]:
    plan = plan_network(genotype, entry["channels"], entry["layers"], entry["stem"])
    size = int(entry["input_size"])
    pool = -(-size // plan.stride)
    in_chans = int(entry.get("in_chans", 3))
    cfg: dict[str, Any] = dict(num_classes=entry["num_classes"], input_size=(in_chans, size, size),
                               pool_size=(pool, pool))
    if plan.stem != "cifar":
        cfg.update(crop_pct=0.875, interpolation="bicubic", first_conv="stem.stem0.0")
    cfg.update(zip(("mean", "std"), dataset_stats(entry.get("dataset"), in_chans), strict=True))
    if file:
        cfg["file"] = str(file)
    return _cfg(**cfg)


def dataset_stats(dataset: str | None, in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``mean`` and ``std`` of a pretrained cfg: how ``dataset`` was normalised for training, one value
    per input channel. An unknown dataset gets CIFAR-10's (3 channels) or none (mean 0, std 1)."""
    if dataset in DATASET_STATS:
        mean, std = DATASET_STATS[dataset]
    elif in_chans == 3:
        mean, std = DATASET_STATS["cifar10"]
    else:
        mean, std = (0.0,), (1.0,)
    if len(mean) != in_chans:  # a one-value normalisation (MNIST) applies to every channel
        mean, std = (mean[0],) * in_chans, (std[0],) * in_chans
    return tuple(mean), tuple(std)


def register_genotype(name: str, genotype: Genotype | dict[str, Any] | str | os.PathLike, *,
                      file: str | os.PathLike | None = None, replace: bool = False, **network: Any) -> str:
    """Register ``genotype`` with timm as ``nd_NAME`` and return that name.

    ``network`` takes :func:`network_config`'s options (``stem``, ``channels``, ``layers``,
    ``num_classes``, ``in_chans``, ``input_size``, ``dataset``); ``file`` is a weights file that
    ``timm.create_model(name, pretrained=True)`` loads. A preset name, or a name already registered
    here unless ``replace``, is refused.
    """
    model_name = model_name_for(name)
    if model_name in preset_names():
        raise ConfigError(f"{model_name!r} is a released preset: choose another name")
    if model_name in default_cfgs and not replace:
        raise ConfigError(f"{model_name!r} is already registered: choose another name")
    genotype = as_genotype(genotype)
    entry = network_config(genotype, **network)
    model_args = {"genotype": genotype, **{k: entry[k] for k in ("stem", "channels", "layers", "num_classes")}}
    default_cfgs.update(generate_default_cfgs({model_name: _pretrained_cfg(genotype, entry, file)}))

    def entrypoint(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
        return _create_network(model_name, pretrained, **{**model_args, **kwargs})

    entrypoint.__name__ = entrypoint.__qualname__ = model_name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"User export {model_name}: {entry}."
    globals()[model_name] = entrypoint
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Overwriting .* in registry")
        register_model(entrypoint)
    return model_name


def model_entry(path: str | os.PathLike) -> tuple[Genotype, dict[str, dict[str, Any]]]:
    """Read a backbone file: its genotype and its ``meta.models`` (model name -> network entry)."""
    from .genotype import load_genotype

    genotype = load_genotype(path)
    models = genotype.meta.get("models")
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"{str(path)!r} has no meta.models: it is a genotype, not an exported backbone")
    return genotype, models


def register_exports(directory: str | os.PathLike | None = None) -> list[str]:
    """Register every backbone in ``directory`` (default :func:`user_dir`); a broken file is skipped
    with a warning, so that one bad export never breaks ``import nni_decouple``."""
    directory = Path(directory) if directory is not None else user_dir()
    names: list[str] = []
    if not directory.is_dir():
        return names
    for path in sorted(directory.glob("*.json")):
        try:
            genotype, models = model_entry(path)
            for model_name, entry in models.items():
                entry = dict(entry)
                weights = entry.pop("weights", None)
                entry.pop("published", None)
                file = (path.parent / weights) if weights else None
                if file is not None and not file.is_file():
                    raise ConfigError(f"its weights {str(file)!r} are missing")
                keys = ("stem", "channels", "layers", "num_classes", "in_chans", "input_size", "dataset")
                names.append(register_genotype(model_name, genotype, file=file, replace=True,
                                               **{k: entry[k] for k in keys if k in entry}))
                _exports[names[-1]] = path
        except (NNIDecoupleError, OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            warnings.warn(f"nni-decouple: skipped the exported backbone {str(path)!r}: {e}", stacklevel=2)
    return names


def registered_exports() -> dict[str, Path]:
    """User exports registered from disk: model name -> backbone file."""
    return dict(_exports)


register_exports()
