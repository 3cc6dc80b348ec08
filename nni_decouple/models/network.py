"""Genotype -> network: the DARTS-family evaluation network as a timm model.

Any :class:`~nni_decouple.models.genotype.Genotype` becomes a :class:`DartsNetwork`: a stem (DARTS'
CIFAR stem, or its three-conv ImageNet stem), ``layers`` cells and a timm classifier head, with
DARTS' auxiliary head at the last reduction (2/3 of the depth) and drop path on every edge that is
not an identity. Cells may be shared by type (DARTS, DOTS) or differ per layer (DNAS, D-DARTS);
nodes may have any number of inputs; a cell concatenates exactly its ``concat`` nodes, so its
output has ``C * len(concat)`` channels.

Only what reaches the output is built: nodes that no concatenated node depends on, cell inputs that
no edge reads, and cells whose output no later cell reads (D-DARTS' DARTOpti Xception releases have
one) would never get a gradient, so they are left out rather than carried as dead weights.

The network follows timm's model contract (``num_classes``, ``num_features``, ``forward_features``,
``forward_head(pre_logits=...)``, ``reset_classifier``, ``feature_info`` for every stride,
``forward_intermediates`` for ``features_only`` with the ``getter`` feature class, since DARTS cells
take two inputs) and the released architectures in ``backbones/`` are registered below as
``nd_*`` models. This module imports torch and timm only, never NNI: an exported network runs
where NNI is not installed.
"""


import contextlib
import json
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import create_classifier, drop_path
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices  # what timm's own models use
from torch import nn

from ..errors import ConfigError, GenotypeError
from ..options import whole
from .blocks import STEMS, CellPreprocessor, make_stem
from .genotype import NUM_INPUTS, CellGenotype, Genotype, load_genotype
from .ops import Identity, create_op

__all__ = ["DartsNetwork", "Cell", "AuxiliaryHead", "NetworkPlan", "plan_network", "network_defaults", "as_genotype",
           "preset_names", "preset_genotype", "preset_info", "backbones_dir", "checkpoint_filter_fn"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

#: DARTS' evaluation network per stem: initial channels and cells.
_STEM_DEFAULTS: dict[str, dict[str, int]] = {"cifar": {"channels": 36, "layers": 20},
                                             "imagenet": {"channels": 48, "layers": 14},
                                             "imagenet_stride4": {"channels": 48, "layers": 14}}


# ----------------------------------------------------------------------------- blocks
class Cell(nn.Module):
    """A searched cell with fixed ops: a node sums its input edges; the cell concatenates ``concat``.

    ``states`` holds the two preprocessed inputs, then the built nodes in order; edges are stored
    sorted by target so that a node's first edge creates its state and later ones add to it.
    """

    def __init__(self, genotype: CellGenotype, c_pprev: int, c_prev: int, c: int, reduction: bool,
                 reduction_prev: bool) -> None:
        super().__init__()
        edges, concat, used = _cell_edges(genotype)
        self.reduction = reduction
        self.preprocess = CellPreprocessor(c_pprev, c_prev, c, reduction_prev, affine=True, used=used)
        self.ops = nn.ModuleList(create_op(op, c, 2 if reduction and src < NUM_INPUTS else 1, True)
                                 for op, src, _ in edges)
        self.sources: list[int] = [src for _, src, _ in edges]
        self.targets: list[int] = [dst for _, _, dst in edges]
        # DARTS drops whole edge outputs during training, except identities (skip at stride 1).
        self.droppable: list[bool] = [not isinstance(op, Identity) for op in self.ops]
        self.concat: list[int] = concat
        self.multiplier = len(concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = self.preprocess([s0, s1])
        for i, op in enumerate(self.ops):
            h = op(states[self.sources[i]])
            if self.training and drop_prob > 0.0 and self.droppable[i]:
                h = drop_path(h, drop_prob, True)
            t = self.targets[i]
            if t == len(states):
                states.append(h)
            else:
                states[t] = states[t] + h
        return torch.cat([states[j] for j in self.concat], dim=1)


class SkippedCell(nn.Module):
    """Stands in for a cell whose output no later cell reads: nothing to compute, nothing to train."""

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        return s1


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier (training only): ReLU, pool to 2x2, 1x1 conv to 128, 2x2 conv to 768,
    linear. DARTS pools with a fixed 5x5 window sized for 8x8 (CIFAR) or 7x7 (ImageNet) inputs; an
    adaptive 2x2 pool gives the same shapes at any input size."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _cell_edges(cell: CellGenotype) -> tuple[list[tuple[str, int, int]], list[int], tuple[bool, bool]]:
    """The edges to build as ``(op, source state, target state)``, the concatenated states, and which of
    the two cell inputs are read. Nodes that no concatenated node depends on are dropped."""
    needed = set(cell.concat)
    for i in reversed(range(cell.num_nodes)):
        if i + NUM_INPUTS in needed:
            needed.update(edge.source for edge in cell.nodes[i])
    state: dict[int, int] = {0: 0, 1: 1}
    edges: list[tuple[str, int, int]] = []
    for i, node in enumerate(cell.nodes):
        node_id = i + NUM_INPUTS
        if node_id not in needed:
            continue
        if not node:
            raise GenotypeError(f"node {node_id} has no input but is used: give it an input edge")
        state[node_id] = len(state)
        for edge in node:
            if edge.source not in state:
                raise GenotypeError(f"node {node_id} reads node {edge.source}, which is not built before it")
            edges.append((edge.op, state[edge.source], state[node_id]))
    return edges, [state[c] for c in cell.concat], (0 in needed, 1 in needed)


class NetworkPlan:
    """Shapes of a network before it is built: per-cell channels and strides, which cells are needed,
    the feature levels (one per stride) and the auxiliary head position. Shared by the model and
    :func:`_create_network` (which needs the number of feature levels up front)."""

    def __init__(self, genotype: Genotype, channels: int, layers: int, stem: str, stem_multiplier: int) -> None:
        if stem not in STEMS:
            raise ConfigError(f"unknown stem {stem!r}: use one of {', '.join(STEMS)}")
        for name, value, low in (("channels", channels, 2), ("layers", layers, 1),
                                 ("stem_multiplier", stem_multiplier, 1)):
            if not whole(value, low):
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if channels % 2:
            raise ConfigError(f"channels must be even (reductions halve with two 1x1 convs), got {channels}")
        genotype.validate()
        self.stem, self.layers = stem, layers
        self.cells: list[tuple[CellGenotype, bool]] = [genotype.cell_at(i, layers) for i in range(layers)]
        imagenet = stem != "cifar"
        # Positions: -2 is the ImageNet stem's first output (stem0), -1 the stem output, i >= 0 cell i.
        c_stem = channels if imagenet else stem_multiplier * channels
        self.stem_channels = c_stem
        self.sources = [((i - 2 if imagenet or i >= 2 else -1), i - 1) for i in range(layers)]
        self.uses = [_cell_edges(cell)[2] for cell, _ in self.cells]
        self.needed = self.needed_for(layers - 1)

        # Channels and strides.
        stride = {"cifar": 1, "imagenet": 8, "imagenet_stride4": 4}[stem]
        c_pprev = c_prev = c_stem
        reduction_prev = imagenet
        c = channels
        self.cell_args: list[tuple[int, int, int, bool, bool]] = []  # c_pprev, c_prev, c, reduction, reduction_prev
        out: dict[int, tuple[int, int]] = {-1: (c_stem, stride)}  # position -> (channels, stride)
        if imagenet:
            out[-2] = (c_stem, stride // 2)
        for i, (cell, reduction) in enumerate(self.cells):
            if reduction:
                c *= 2
                stride *= 2
            self.cell_args.append((c_pprev, c_prev, c, reduction, reduction_prev))
            c_pprev, c_prev = c_prev, c * len(cell.concat)
            reduction_prev = reduction
            out[i] = (c_prev, stride)
        self.num_features = c_prev
        self.stride = stride

        # One feature level per stride: the deepest built output at that stride.
        names = {-2: "stem.stem0", -1: "stem.stem1" if imagenet else "stem"}
        candidates = sorted(p for p in out if p < 0 or self.needed[p])
        by_stride: dict[int, int] = {}
        for p in candidates:
            by_stride[out[p][1]] = p
        self.feature_positions = sorted(by_stride.values())
        self.feature_info = [dict(num_chs=out[p][0], reduction=out[p][1], module=names.get(p, f"cells.{p}"))
                             for p in self.feature_positions]

        # DARTS' auxiliary head reads the last reduction cell (2/3 of the depth), or the deepest built
        # cell before it.
        reductions = [i for i, (_, r) in enumerate(self.cells) if r]
        aux = max(reductions) if reductions else (2 * layers) // 3
        while aux > 0 and not self.needed[aux]:
            aux -= 1
        self.aux_position = aux
        self.aux_channels = out[aux][0]


    def reads(self, position: int) -> set[int]:
        """Every position (-2, -1: the stem's outputs; i >= 0: cell i) the output at ``position`` depends on."""
        read = {position}
        for i in reversed(range(position + 1)):
            if i in read:
                read.update(src for src, use in zip(self.sources[i], self.uses[i], strict=True) if use)
        if self.stem != "cifar" and -1 in read:
            read.add(-2)  # stem1 reads stem0
        return read

    def needed_for(self, position: int) -> list[bool]:
        """Which cells the output at ``position`` reads, directly or through other cells."""
        read = self.reads(position)
        return [i in read for i in range(self.layers)]


def plan_network(genotype: Genotype, channels: int | None = None, layers: int | None = None, stem: str = "cifar",
                 stem_multiplier: int = 3) -> NetworkPlan:
    """The :class:`NetworkPlan` with the defaults :class:`DartsNetwork` uses."""
    channels, layers = network_defaults(genotype, channels, layers, stem)
    return NetworkPlan(genotype, channels, layers, stem, stem_multiplier)


def network_defaults(genotype: Genotype, channels: int | None, layers: int | None, stem: str) -> tuple[int, int]:
    """DARTS' evaluation width and depth for ``stem`` where not given; per-layer genotypes fix the depth."""
    defaults = _STEM_DEFAULTS.get(stem, _STEM_DEFAULTS["cifar"])
    if layers is None:
        layers = len(genotype.layers) if genotype.per_layer else defaults["layers"]
    return (defaults["channels"] if channels is None else channels), layers


def as_genotype(genotype: Genotype | dict[str, Any] | str | os.PathLike) -> Genotype:
    """A :class:`Genotype` from itself, its JSON dict, or a genotype file / run directory."""
    if isinstance(genotype, Genotype):
        return genotype
    if isinstance(genotype, dict):
        return Genotype.from_dict(genotype).validate()
    if isinstance(genotype, (str, os.PathLike)):
        return load_genotype(genotype)
    raise GenotypeError(f"expected a Genotype, its JSON dict or a genotype file, got {type(genotype).__name__}")


# ----------------------------------------------------------------------------- model
class DartsNetwork(nn.Module):
    """The DARTS evaluation network for any genotype, as a timm model.

    Args:
        genotype: the architecture (a :class:`Genotype`, its JSON dict, or a genotype file / run dir).
        channels: initial channels C (DARTS: 36 on CIFAR, 48 on ImageNet).
        layers: number of cells (DARTS: 20 on CIFAR, 14 on ImageNet; per-layer genotypes fix it).
        num_classes: classifier outputs (0: no classifier, ``forward`` returns pooled features).
        in_chans: image channels.
        stem: ``cifar`` (3x3 conv, stride 1, ``stem_multiplier * C`` channels), ``imagenet`` (DARTS'
            three 3x3 convs, stride 8) or ``imagenet_stride4`` (the same at stride 4, D-DARTS' DARTOpti).
        global_pool: timm pooling type of the head.
        drop_rate: dropout before the classifier.
        drop_path_rate: DARTS' drop-path probability, the same for every edge; ``retrain`` raises it
            linearly over the epochs as DARTS does.
        aux_head: build DARTS' auxiliary head (used by :meth:`forward_train` only).
    """

    __constants__ = ["imagenet_stem"]  # lets TorchScript compile only the stem branch in use
    __jit_ignored_attributes__ = ["genotype", "plan"]

    def __init__(self, genotype: Genotype | dict[str, Any] | str | os.PathLike, channels: int | None = None,
                 layers: int | None = None, num_classes: int = 1000, in_chans: int = 3, stem: str = "cifar",
                 stem_multiplier: int = 3, global_pool: str = "avg", drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, aux_head: bool = False, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        genotype = as_genotype(genotype)
        plan = plan_network(genotype, channels, layers, stem, stem_multiplier)
        for name, value, least in (("num_classes", num_classes, 0), ("in_chans", in_chans, 1)):
            if not whole(value, least):
                raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
        if not 0.0 <= drop_path_rate < 1.0 or not 0.0 <= drop_rate < 1.0:
            raise ConfigError(f"drop_path_rate and drop_rate must be in [0, 1), got {drop_path_rate}, {drop_rate}")
        self.genotype = genotype
        self.plan = plan
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.drop_path_prob = float(drop_path_rate)
        self.imagenet_stem = stem != "cifar"
        # timm's factory kwargs: every tensor is made on ``device`` (torch's device context reaches the op
        # factories too) and every floating-point one is cast to ``dtype`` (integer buffers keep theirs).
        with torch.device(device) if device is not None else contextlib.nullcontext():
            self.stem, _ = make_stem(stem, in_chans, plan.stem_channels)  # type: ignore[arg-type]
            self.cells = nn.ModuleList(
                Cell(cell, *args) if needed else SkippedCell()
                for (cell, _), args, needed in zip(plan.cells, plan.cell_args, plan.needed, strict=True)
            )
            self.aux_head = AuxiliaryHead(plan.aux_channels, num_classes) if aux_head else None
            self.global_pool, self.classifier = create_classifier(plan.num_features, num_classes,
                                                                  pool_type=global_pool)
        if dtype is not None:
            self.to(dtype=dtype)
        self.num_features = self.head_hidden_size = plan.num_features
        self.feature_info = [dict(info) for info in plan.feature_info]
        self._feature_positions = list(plan.feature_positions)
        self._aux_position = plan.aux_position

    # -- timm API
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^stem", blocks=r"^cells\.(\d+)")

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            raise NotImplementedError("gradient checkpointing is not implemented for DARTS cells")

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new head for ``num_classes`` (0: none) on the model's device and dtype, in its train/eval mode;
        ``global_pool=None`` keeps the current pooling (timm's contract)."""
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        like = next(self.stem.parameters())
        factory = dict(device=like.device, dtype=like.dtype)
        self.global_pool, self.classifier = create_classifier(self.num_features, num_classes, pool_type=global_pool,
                                                              **factory)
        self.global_pool.train(self.training)
        self.classifier.train(self.training)
        if self.aux_head is not None:
            head = nn.Linear(768, num_classes, **factory) if num_classes > 0 else nn.Identity()
            self.aux_head.classifier = head.train(self.training)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.imagenet_stem:
            s0, s1 = self.stem(x)
        else:
            s0 = self.stem(x)
            s1 = s0
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
        return s1

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate > 0.0:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, with ``aux_head=True`` in training mode, the auxiliary logits (DARTS' recipe)."""
        take_aux = self.aux_head is not None and self.training
        s0, s1 = self.stem(x) if self.imagenet_stem else (self.stem(x),) * 2
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if take_aux and i == self._aux_position:
                aux = self.aux_head(s1)
        return self.forward_head(s1), aux

    @torch.jit.ignore
    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
                              ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The outputs at the :attr:`feature_info` levels (``indices``: last n if int, all if None)."""
        if output_fmt != "NCHW":
            raise ValueError("DARTS networks output NCHW features only")
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        take = {self._feature_positions[i] for i in take_indices}
        last = self._feature_positions[max_index] if stop_early else len(self.cells) - 1
        intermediates: list[torch.Tensor] = []
        if self.imagenet_stem:
            s0, s1 = self.stem(x)
            if -2 in take:
                intermediates.append(s0)
        else:
            s0 = s1 = self.stem(x)
        if -1 in take:
            intermediates.append(s1)
        for i, cell in enumerate(self.cells):
            if i > last:
                break
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i in take:
                intermediates.append(s1)
        if intermediates_only:
            return intermediates
        return s1, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Keep only what the deepest requested feature level reads (timm's contract): afterwards
        :meth:`forward_features` returns that level's output, and every parameter left gets a gradient.

        Cells after the level are removed; cells before it that it never reads become
        :class:`SkippedCell`; at the ImageNet stem's first level (stem0) stem1 is dropped. With
        ``prune_head`` the classifier, pooling and auxiliary head go too. Returns the kept indices.
        """
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        last = self._feature_positions[max_index]
        kept = max(last + 1, 0)
        needed = self.plan.needed_for(last)[:kept] if last >= 0 else []
        self.cells = nn.ModuleList(cell if keep else SkippedCell()
                                   for cell, keep in zip(self.cells[:kept], needed, strict=True))
        if last == -2:  # the output of stem0: stem1 would compute what nothing reads
            self.stem.stem1 = nn.Identity()
        if self.aux_head is not None and (prune_head or self._aux_position not in self.plan.reads(last)):
            self.aux_head = None
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: DartsNetwork) -> dict[str, torch.Tensor]:
    """Accept this package's weight files and Lightning checkpoints: strip a ``model.`` prefix (the
    retraining module's attribute) and drop auxiliary-head weights the target model does not have."""
    if state_dict and all(k.startswith("model.") for k in state_dict):
        state_dict = {k[len("model."):]: v for k, v in state_dict.items()}
    if getattr(model, "aux_head", None) is None:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("aux_head.")}
    return state_dict


def _create_network(variant: str, pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """Build through timm (pretrained cfg, ``features_only`` via :meth:`DartsNetwork.forward_intermediates`)."""
    if "genotype" not in kwargs:
        kwargs["genotype"] = preset_genotype(variant)
        for key, value in _preset_model_args(variant).items():
            kwargs.setdefault(key, value)
    genotype = as_genotype(kwargs["genotype"])
    kwargs["genotype"] = genotype
    plan = plan_network(genotype, kwargs.get("channels"), kwargs.get("layers"), kwargs.get("stem", "cifar"),
                        kwargs.get("stem_multiplier", 3))
    return build_model_with_cfg(
        DartsNetwork, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", out_indices=tuple(range(len(plan.feature_info)))),
        **kwargs,
    )


# ----------------------------------------------------------------------------- presets (backbones/)
def backbones_dir() -> Path:
    """The released architectures: ``nni_decouple.backbones`` when installed, ``backbones/`` in a checkout."""
    try:
        path = Path(str(resources.files("nni_decouple.backbones")))
        if path.is_dir() and any(path.glob("*.json")):
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "backbones"


@cache
def _presets() -> dict[str, tuple[str, dict[str, Any]]]:
    """Model name -> (backbone file stem, that model's entry in the file's ``meta.models``)."""
    presets: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(backbones_dir().glob("*.json")):
        meta = json.loads(path.read_text(encoding="utf-8")).get("meta", {})
        for model_name, entry in meta.get("models", {}).items():
            presets[model_name] = (path.stem, entry)
    return presets


def preset_names() -> list[str]:
    """The names of every released architecture in ``backbones/``, as registered with timm."""
    return list(_presets())


def preset_info(model_name: str) -> dict[str, Any]:
    """A preset's evaluation configuration and provenance (its ``meta.models`` entry plus file meta)."""
    try:
        stem, entry = _presets()[model_name]
    except KeyError:
        raise ConfigError(f"no preset named {model_name!r}: presets are {', '.join(_presets())}") from None
    meta = dict(preset_genotype(model_name).meta)
    meta.pop("models", None)
    return dict(meta, backbone=stem, **entry)


@cache
def _preset_genotype(stem: str) -> Genotype:
    return load_genotype(backbones_dir() / f"{stem}.json")


def preset_genotype(model_name: str) -> Genotype:
    """The genotype behind a preset model name (e.g. ``nd_darts_v2``)."""
    if model_name not in _presets():
        raise ConfigError(f"no preset named {model_name!r}: presets are {', '.join(_presets())}")
    return _preset_genotype(_presets()[model_name][0])


def _preset_model_args(model_name: str) -> dict[str, Any]:
    entry = _presets()[model_name][1]
    return {k: entry[k] for k in ("stem", "channels", "layers", "num_classes") if k in entry}


def _cfg(url: str = "", **kwargs: Any) -> dict[str, Any]:
    return {
        "url": url, "num_classes": 10, "input_size": (3, 32, 32), "pool_size": (8, 8),
        "crop_pct": 1.0, "interpolation": "bilinear", "mean": CIFAR10_MEAN, "std": CIFAR10_STD,
        "first_conv": "stem.0", "classifier": "classifier", **kwargs,
    }


def _preset_cfg(model_name: str) -> dict[str, Any]:
    """A preset's pretrained cfg from its dataset and network shape (input size, pool size)."""
    entry = _presets()[model_name][1]
    genotype = preset_genotype(model_name)
    args = _preset_model_args(model_name)
    plan = plan_network(genotype, args.get("channels"), args.get("layers"), args.get("stem", "cifar"))
    size = int(entry.get("input_size", 32 if plan.stem == "cifar" else 224))
    pool = -(-size // plan.stride)
    cfg: dict[str, Any] = dict(num_classes=args.get("num_classes", 10), input_size=(3, size, size),
                               pool_size=(pool, pool))
    dataset = entry.get("dataset", "")
    if plan.stem != "cifar":
        cfg.update(crop_pct=0.875, interpolation="bicubic", first_conv="stem.stem0.0")
    if dataset == "cifar100":
        cfg.update(mean=CIFAR100_MEAN, std=CIFAR100_STD)
    elif dataset == "imagenet":
        cfg.update(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD)
    return _cfg(**cfg)


default_cfgs = generate_default_cfgs({name: _preset_cfg(name) for name in preset_names()})


# DARTS (Liu et al., ICLR 2019): the second-order search's released cell, on CIFAR-10 and ImageNet.
@register_model
def nd_darts_v2(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTS_V2, CIFAR-10 network: 36 channels, 20 cells (3.3M params)."""
    return _create_network("nd_darts_v2", pretrained, **kwargs)


@register_model
def nd_darts_v2_imagenet(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTS_V2, ImageNet network: 48 channels, 14 cells (4.7M params, 574M MACs)."""
    return _create_network("nd_darts_v2_imagenet", pretrained, **kwargs)


# DOTS (Gu et al., CVPR 2021): cells searched on CIFAR-10, CIFAR-100 and ImageNet.
@register_model
def nd_dots_c10(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DOTS, searched and evaluated on CIFAR-10: 36 channels, 20 cells (3.5M params)."""
    return _create_network("nd_dots_c10", pretrained, **kwargs)


@register_model
def nd_dots_c100(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DOTS, searched and evaluated on CIFAR-100: 36 channels, 20 cells (4.1M params)."""
    return _create_network("nd_dots_c100", pretrained, **kwargs)


@register_model
def nd_dots_imagenet(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DOTS, searched and evaluated on ImageNet: 48 channels, 14 cells (5.3M params, 596M MACs)."""
    return _create_network("nd_dots_imagenet", pretrained, **kwargs)


# D-DARTS (Heuillet et al., Pattern Recognition Letters 2023): 8 individually searched cells each; and
# DARTOpti, hand-made ResNet18 / ResNet50 / Xception genotypes optimised in the 12-op space S_o.
@register_model
def nd_ddarts_edge_c10(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """D-DARTS (edge, cifar10), CIFAR network, 10 classes: 36 channels, 8 cells."""
    return _create_network("nd_ddarts_edge_c10", pretrained, **kwargs)


@register_model
def nd_ddarts_sparse_c10(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """D-DARTS (sparse, cifar10), CIFAR network, 10 classes: 36 channels, 8 cells."""
    return _create_network("nd_ddarts_sparse_c10", pretrained, **kwargs)


@register_model
def nd_ddarts_edge_c100(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """D-DARTS (edge, cifar100), CIFAR network, 100 classes: 36 channels, 8 cells."""
    return _create_network("nd_ddarts_edge_c100", pretrained, **kwargs)


@register_model
def nd_ddarts_sparse_c100(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """D-DARTS (sparse, cifar100), CIFAR network, 100 classes: 36 channels, 8 cells."""
    return _create_network("nd_ddarts_sparse_c100", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet18_edge_c10(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet18 (edge, cifar10), CIFAR network, 10 classes: 64 channels, 4 cells."""
    return _create_network("nd_dartopti_resnet18_edge_c10", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet18_sparse_c10(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet18 (sparse, cifar10), CIFAR network, 10 classes: 64 channels, 4 cells."""
    return _create_network("nd_dartopti_resnet18_sparse_c10", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet18_edge_c100(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet18 (edge, cifar100), CIFAR network, 100 classes: 64 channels, 4 cells."""
    return _create_network("nd_dartopti_resnet18_edge_c100", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet18_sparse_c100(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet18 (sparse, cifar100), CIFAR network, 100 classes: 64 channels, 4 cells."""
    return _create_network("nd_dartopti_resnet18_sparse_c100", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet18_sparse_c100_imagenet(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet18 (sparse, cifar100) on a stride-4 ImageNet network (the paper's DO-2 row): 64 ch., 4 cells."""
    return _create_network("nd_dartopti_resnet18_sparse_c100_imagenet", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet50_edge_c10(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet50 (edge, cifar10), CIFAR network, 10 classes: 64 channels, 4 cells."""
    return _create_network("nd_dartopti_resnet50_edge_c10", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet50_sparse_c10(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet50 (sparse, cifar10), CIFAR network, 10 classes: 64 channels, 4 cells."""
    return _create_network("nd_dartopti_resnet50_sparse_c10", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet50_edge_c100(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet50 (edge, cifar100), CIFAR network, 100 classes: 64 channels, 4 cells."""
    return _create_network("nd_dartopti_resnet50_edge_c100", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet50_sparse_c100(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet50 (sparse, cifar100), CIFAR network, 100 classes: 64 channels, 4 cells."""
    return _create_network("nd_dartopti_resnet50_sparse_c100", pretrained, **kwargs)


@register_model
def nd_dartopti_resnet50_sparse_c100_imagenet(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti ResNet50 (sparse, cifar100) on a stride-4 ImageNet network (the paper's DO-2 row): 64 ch., 4 cells."""
    return _create_network("nd_dartopti_resnet50_sparse_c100_imagenet", pretrained, **kwargs)


@register_model
def nd_dartopti_xception_edge_c10(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti Xception (edge, cifar10), CIFAR network, 10 classes: 64 channels, 13 cells."""
    return _create_network("nd_dartopti_xception_edge_c10", pretrained, **kwargs)


@register_model
def nd_dartopti_xception_sparse_c10(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti Xception (sparse, cifar10), CIFAR network, 10 classes: 64 channels, 13 cells."""
    return _create_network("nd_dartopti_xception_sparse_c10", pretrained, **kwargs)


@register_model
def nd_dartopti_xception_sparse_c100(pretrained: bool = False, **kwargs: Any) -> DartsNetwork:
    """DARTOpti Xception (sparse, cifar100), CIFAR network, 100 classes: 64 channels, 13 cells."""
    return _create_network("nd_dartopti_xception_sparse_c100", pretrained, **kwargs)
