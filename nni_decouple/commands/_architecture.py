"""What ``export`` and ``train`` accept as an architecture: a timm name, a backbone, a genotype, a run.

:func:`resolve` turns ``GENOTYPE_OR_NAME`` into the genotype and the network it was last described
with, so that a search run, a training run, a released preset and a user export all work the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, GenotypeError
from ..models.genotype import Genotype, load_genotype, split_selection

#: The prefix of every model name the package registers with timm (``models.timm_models.PREFIX``).
PREFIX = "nd_"

#: What a network for a dataset needs when nothing else says: classes, image channels and size, stem.
#: (The same facts as ``nni_decouple.data``'s DatasetInfo, known here without loading the data.)
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "mnist5k": {"num_classes": 10, "in_chans": 1, "input_size": 28, "stem": "cifar"},
    "digits": {"num_classes": 10, "in_chans": 1, "input_size": 8, "stem": "cifar"},
    "cifar10": {"num_classes": 10, "in_chans": 3, "input_size": 32, "stem": "cifar"},
    "cifar100": {"num_classes": 100, "in_chans": 3, "input_size": 32, "stem": "cifar"},
    "imagenet": {"num_classes": 1000, "in_chans": 3, "input_size": 224, "stem": "imagenet"},
}
NETWORK_KEYS = ("stem", "channels", "layers", "num_classes", "in_chans", "input_size", "dataset")


@dataclass
class Architecture:
    genotype: Genotype
    label: str  # a short name for run directories and messages
    network: dict[str, Any] = field(default_factory=dict)  # the network it was described with, if any
    timm_name: str | None = None  # registered timm model, if it is one
    run_dir: Path | None = None  # the run directory it came from, if any


def resolve(spec: str) -> Architecture:
    """A preset or export name (with or without ``nd_``), a backbone / genotype file, or a run directory."""
    from ..models.network import preset_genotype, preset_info, preset_names
    from ..models.timm_models import registered_exports

    name = spec if spec.startswith(PREFIX) else PREFIX + spec
    if name in preset_names():
        info = preset_info(name)
        return Architecture(preset_genotype(name), name[len(PREFIX):],
                            {k: info[k] for k in NETWORK_KEYS if k in info}, timm_name=name)
    exports = registered_exports()
    if name in exports:
        genotype = load_genotype(exports[name])
        entry = genotype.meta.get("models", {}).get(name, {})
        return Architecture(genotype, name[len(PREFIX):], {k: entry[k] for k in NETWORK_KEYS if k in entry},
                            timm_name=name)
    path, selected = split_selection(Path(spec).expanduser())  # FILE:NAME picks one of several genotypes
    if not path.exists():
        raise GenotypeError(
            f"{spec!r} is neither a registered model (presets: {', '.join(n[len(PREFIX):] for n in preset_names())}"
            f"{'; exports: ' + ', '.join(exports) if exports else ''}) nor a genotype file or run directory"
        )
    genotype = load_genotype(path, selected)
    run_dir = path if path.is_dir() else None
    label = selected or (path if path.is_dir() else path.with_suffix("")).name
    meta = genotype.meta
    network: dict[str, Any] = {}
    if isinstance(meta.get("network"), dict):  # a training run
        network = dict(meta["network"])
    elif isinstance(meta.get("models"), dict) and len(meta["models"]) == 1:  # a backbone file
        network = dict(next(iter(meta["models"].values())))
    else:  # a search run: the data it searched on, and the evaluation shape a method asks for
        if "dataset" in meta:
            network["dataset"] = meta["dataset"]
        for key in ("channels", "layers"):
            if f"eval_{key}" in meta:
                network[key] = meta[f"eval_{key}"]
    return Architecture(genotype, label, {k: network[k] for k in NETWORK_KEYS if k in network}, run_dir=run_dir)


def network_for(arch: Architecture, overrides: dict[str, Any], defaults: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
    """The network to build: explicit options, else what ``arch`` was described with, else ``defaults``,
    else what its dataset implies."""
    network = {**(defaults or {}), **arch.network, **{k: v for k, v in overrides.items() if v is not None}}
    dataset = network.get("dataset")
    if dataset in DATASET_DEFAULTS:
        for key, value in DATASET_DEFAULTS[dataset].items():
            network.setdefault(key, value)
    elif dataset is None and "num_classes" not in network:
        raise ConfigError("the number of classes is unknown: pass --dataset or --num-classes")
    return network
