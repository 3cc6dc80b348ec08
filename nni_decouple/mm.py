"""Searched networks as OpenMMLab backbones (mmdetection 3.x, mmsegmentation 1.x).

Importing this module registers :class:`NNIDecoupleBackbone` in mmengine's root ``MODELS`` registry.
mmdet's and mmseg's registries are children of it, so both find the type once a config says::

    custom_imports = dict(imports=['nni_decouple.mm'], allow_failed_imports=False)
    model = dict(backbone=dict(_delete_=True, type='NNIDecoupleBackbone', model='nd_dots_imagenet',
                               out_indices=(0, 1, 2, 3)))

The backbone is a timm ``features_only`` model with the ``getter`` feature class, so it takes any
``nd_*`` preset, any timm model with ``forward_intermediates`` (``resnet50``, ``convnext_tiny``...)
or a genotype file written by ``nni-decouple search``. Its weights keep the network's own names
under ``net.model.``, which is what lets a checkpoint of ``nni-decouple train`` (or timm) load with
every key matched. Importing the module also allow-lists the types mmengine pickles into its own
checkpoints, because torch >= 2.6 loads with ``weights_only=True`` and mmengine 0.10 does not say
otherwise (``load_from`` and ``resume`` would fail).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .errors import CheckpointError, ConfigError

__all__ = ["NNIDecoupleBackbone", "allow_mm_checkpoints", "create_feature_model", "backbone_channels",
           "sync_in_channels", "state_dict_from_checkpoint", "match_state_dict"]

BACKBONE_TYPE = "NNIDecoupleBackbone"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://")


# ----------------------------------------------------------------------------- checkpoints
def allow_mm_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine's checkpoints (``load_from``, ``resume``).

    mmengine stores its message hub (``HistoryBuffer`` objects holding numpy arrays and scalars)
    next to the weights. Allow exactly those types instead of turning the safety check off for
    every load with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``.
    """
    import builtins

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    try:
        from numpy.core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 2 moved them; the pickles name the new place
        from numpy._core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    dtypes = [t for t in vars(np.dtypes).values() if isinstance(t, type) and issubclass(t, np.dtype)]
    torch.serialization.add_safe_globals(
        [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar, builtins.getattr, *dtypes])


def state_dict_from_checkpoint(checkpoint: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The weights inside a loaded checkpoint: mmengine and Lightning keep them under ``state_dict``,
    timm's training script under ``state_dict`` or ``model``; a plain state dict is its own."""
    if isinstance(checkpoint, Mapping):
        for key in ("state_dict", "model"):
            inner = checkpoint.get(key)
            if isinstance(inner, Mapping) and inner and all(torch.is_tensor(v) for v in inner.values()):
                return dict(inner)
        if checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
            return dict(checkpoint)
    keys = f" with keys {', '.join(map(str, list(checkpoint)[:8]))}" if isinstance(checkpoint, Mapping) else ""
    raise CheckpointError(
        f"{source} holds no weights: expected a state dict, or a dict with one under 'state_dict' or 'model' "
        f"(got a {type(checkpoint).__name__}{keys})"
    )


def match_state_dict(wanted: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                     source: str = "checkpoint", optional: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Find every ``wanted`` key in ``state`` under one common prefix and return them renamed.

    A training run saves the network under whatever attribute holds it (``model.`` in a Lightning
    module, ``module.`` under DDP, ``backbone.net.model.`` in an mm detector, none in a timm file);
    the prefix is found from the checkpoint instead of guessed. Keys ending in one of ``optional``
    (BatchNorm's ``num_batches_tracked`` counters) may be absent; anything else missing, or of another
    shape, is a :class:`CheckpointError` that names the keys.
    """
    optional = tuple(optional)
    required = [k for k in wanted if not k.endswith(optional)] or list(wanted)
    anchor = required[0]
    prefixes: list[str] = []
    for key in state:
        if key == anchor or key.endswith("." + anchor):
            prefix = key[: len(key) - len(anchor)]
            if prefix not in prefixes:
                prefixes.append(prefix)
    if not prefixes:
        raise CheckpointError(
            f"{source} does not hold this backbone's weights: no key ends with {anchor!r} "
            f"(its keys start {', '.join(list(state)[:5])}); check the backbone's model and model_kwargs, "
            f"or give init_cfg a 'prefix' that selects the network inside the checkpoint"
        )
    # The prefix that covers most backbone keys; on a tie the shortest (the network itself, not a copy).
    best = max(prefixes, key=lambda p: (sum(p + k in state for k in required), -len(p)))
    missing = [k for k in required if best + k not in state]
    if missing:
        raise CheckpointError(
            f"{source} misses {len(missing)} of {len(required)} backbone weights under the prefix {best!r} "
            f"(first: {', '.join(missing[:5])}): it was trained for another architecture; check the backbone's "
            f"model and model_kwargs"
        )
    wrong = [f"{k} {tuple(state[best + k].shape)} != {tuple(v.shape)}"
             for k, v in wanted.items() if best + k in state and state[best + k].shape != v.shape]
    if wrong:
        raise CheckpointError(
            f"{source} has {len(wrong)} backbone weights of another shape ({'; '.join(wrong[:3])}): it was "
            f"trained with another width or depth; set the backbone's model_kwargs to the trained ones"
        )
    return {k: state[best + k] for k in wanted if best + k in state}


def _load_checkpoint_file(checkpoint: str, map_location: str = "cpu") -> Any:
    """Load a local file or URL through mmengine's loaders (``torchvision://``, ``open-mmlab://``, http)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    if not _URL.match(checkpoint) and not Path(checkpoint).expanduser().is_file():
        raise CheckpointError(
            f"backbone checkpoint {checkpoint!r} does not exist: train the backbone with `nni-decouple train` "
            f"and pass its weights with --cfg-options model.backbone.init_cfg.checkpoint=PATH, or set "
            f"model.backbone.init_cfg=None to start from random weights"
        )
    try:
        return CheckpointLoader.load_checkpoint(os.path.expanduser(checkpoint), map_location=map_location,
                                                logger="current")
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or EOFError for a bad file
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"cannot read backbone checkpoint {checkpoint!r}: {str(e).splitlines()[0]}") from e


# ----------------------------------------------------------------------------- networks
def _register_nd_models() -> None:
    """Make sure the ``nd_*`` presets and the user's exports are registered with timm (on import)."""
    from . import timm_models  # noqa: F401


def create_feature_model(model: str, out_indices: Sequence[int], model_kwargs: Mapping[str, Any] | None = None,
                         ) -> nn.Module:
    """A timm ``features_only`` model (``getter`` feature class) returning the levels ``out_indices``.

    ``model`` is a timm model name (``nd_*`` presets and exports included) or a genotype file / run
    directory (see :func:`_register_genotype_file`); ``model_kwargs`` go to ``timm.create_model``.
    """
    _register_nd_models()
    kwargs = dict(model_kwargs or {})
    for key in ("pretrained", "features_only", "out_indices", "feature_cls"):
        if key in kwargs:
            raise ConfigError(f"model_kwargs sets {key!r}, which the backbone decides: remove it "
                              f"(weights load through init_cfg, levels through out_indices)")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"backbone model must be a timm model name or a genotype file, got {model!r}")
    if timm.is_model(model):
        name = model
    elif Path(model).expanduser().exists():
        name = _register_genotype_file(Path(model).expanduser())
    else:
        presets = sorted(n for n in timm.list_models("nd_*"))
        raise ConfigError(
            f"backbone model {model!r} is neither a timm model nor a genotype file; presets are "
            f"{', '.join(presets) or '(none registered)'}"
        )
    indices = [int(i) for i in out_indices]
    if not indices or sorted(set(indices)) != indices or indices[0] < 0:
        raise ConfigError(f"out_indices must be distinct feature levels in increasing order, got {tuple(out_indices)}")
    try:
        net = timm.create_model(name, pretrained=False, features_only=True, feature_cls="getter",
                                out_indices=tuple(indices), **kwargs)
    except (TypeError, ValueError, IndexError, AssertionError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"cannot build backbone {model!r} with out_indices={tuple(indices)} and "
                          f"model_kwargs={dict(model_kwargs or {})}: {e}") from e
    if not hasattr(net.model, "forward_intermediates"):
        raise ConfigError(f"timm model {name!r} has no forward_intermediates, so it cannot serve as a backbone here")
    return net


#: The network a genotype describes when its file names one (a training run, an exported backbone).
_NETWORK_KEYS = ("stem", "channels", "layers", "in_chans", "dataset")


def _register_genotype_file(path: Path) -> str:
    """Register a genotype file or run directory with timm and return its model name.

    The network is the one the file describes (``meta.network`` of a training run, the single
    ``meta.models`` entry of an exported backbone), so that the weights trained for it fit; a bare
    genotype (a search result) becomes DARTS' ImageNet network (three-conv stem, 48 channels,
    14 cells, strides 4 to 32), the shape the papers transfer to detection and segmentation.
    """
    import hashlib
    import json

    from .models.genotype import load_genotype
    from .models.timm_models import register_genotype

    genotype = load_genotype(path)
    meta = genotype.meta
    described = meta.get("network")
    if not isinstance(described, Mapping) and isinstance(meta.get("models"), Mapping) and len(meta["models"]) == 1:
        described = next(iter(meta["models"].values()))
    if isinstance(described, Mapping):
        network = {k: described[k] for k in _NETWORK_KEYS if k in described}
    else:
        network = {"stem": "imagenet"}
    key = json.dumps([genotype.to_dict(), network], sort_keys=True, default=str)
    return register_genotype(f"genotype_{hashlib.sha1(key.encode()).hexdigest()[:12]}", genotype, replace=True,
                             **network)


def _modules_feeding(model: nn.Module, levels: Sequence[int], in_chans: int, size: int) -> list[nn.Module]:
    """The modules (with weights or buffers of their own) whose output reaches the feature ``levels``.

    Found by autograd on one small input rather than by module names, so it holds for any network:
    cells that take two inputs, skipped cells, timm stages. Runs in eval mode (no statistics change).
    """
    owners = [m for m in model.modules()
              if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))]
    outputs: list[tuple[nn.Module, torch.Tensor]] = []

    def record(module: nn.Module, _: Any, out: Any) -> None:
        if torch.is_tensor(out) and out.requires_grad:
            outputs.append((module, out))

    handles = [m.register_forward_hook(record) for m in owners]
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, in_chans, size, size, requires_grad=True)
        feats = model.forward_intermediates(x, indices=list(levels), intermediates_only=True)
        total = sum(f.sum() for f in feats)
        grads = torch.autograd.grad(total, [o for _, o in outputs], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    seen: set[int] = set()
    found: list[nn.Module] = []
    for (module, _), g in zip(outputs, grads, strict=True):
        if g is not None and id(module) not in seen:
            seen.add(id(module))
            found.append(module)
    return found


# ----------------------------------------------------------------------------- the backbone
@MODELS.register_module()
class NNIDecoupleBackbone(BaseModule):
    """A searched network (or any timm model with ``forward_intermediates``) as an mm backbone.

    Args:
        model: timm model name (``nd_dots_imagenet``, ``nd_darts_v2_imagenet``, an export, ``resnet50``...)
            or a genotype file / run directory: the network a training run or export describes, else
            (a search result) DARTS' ImageNet network.
        out_indices: feature levels to return, indices into the network's ``feature_info`` (one
            level per stride; for the ``nd_*`` ImageNet networks 0..3 are strides 4, 8, 16, 32).
        frozen_stages: freeze (no gradient, BatchNorm in eval mode) every module that the levels
            ``0..frozen_stages`` depend on; -1 freezes nothing. As in mmdet's ResNet, where level 0 is
            the stem: ``frozen_stages=1`` freezes the stem and the first stage.
        norm_eval: keep every BatchNorm in eval mode while training (frozen statistics), as mmdet's
            ResNet does for small per-GPU batches.
        model_kwargs: more arguments for ``timm.create_model`` (e.g. ``channels``, ``layers``,
            ``drop_path_rate`` of the ``nd_*`` networks).
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads a
            checkpoint of ``nni-decouple train``, timm or mm and requires every backbone weight to
            be found in it (an optional ``prefix`` selects a sub-module, as in mmengine).
    """

    def __init__(self, model: str, out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, model_kwargs: Mapping[str, Any] | None = None,
                 init_cfg: dict[str, Any] | list[dict[str, Any]] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.net = create_feature_model(model, out_indices, model_kwargs)
        self.model_name = model
        self.out_indices = tuple(int(i) for i in out_indices)
        info = self.net.feature_info
        self.channels: tuple[int, ...] = tuple(info.channels())
        self.strides: tuple[int, ...] = tuple(info.reduction())
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or not (
                -1 <= frozen_stages <= self.out_indices[-1]):
            raise ConfigError(f"frozen_stages must be -1 (none) up to the deepest out index {self.out_indices[-1]}, "
                              f"got {frozen_stages!r}")
        self.frozen_stages = frozen_stages
        self.norm_eval = bool(norm_eval)
        self._frozen: list[nn.Module] = []
        if frozen_stages >= 0:
            in_chans = int((model_kwargs or {}).get("in_chans", 3))
            size = max(32, 2 * int(self.net.model.feature_info[frozen_stages]["reduction"]))
            self._frozen = _modules_feeding(self.net.model, list(range(frozen_stages + 1)), in_chans, size)
        self._freeze()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.net(x))

    def _freeze(self) -> None:
        for module in self._frozen:
            module.eval()
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> NNIDecoupleBackbone:
        """Switch mode, keeping frozen modules (and, with ``norm_eval``, every BatchNorm) in eval mode."""
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # -- weights
    def init_weights(self) -> None:
        """mmengine initialisers first, then ``Pretrained`` through :meth:`load_pretrained`, which
        matches the network's own key names and fails if any backbone weight is missing (mmengine's
        ``PretrainedInit`` loads with ``strict=False`` and would only warn)."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg] if self.init_cfg else []
        pretrained = [c for c in cfgs if c.get("type") == "Pretrained"]
        others = [c for c in cfgs if c.get("type") != "Pretrained"]
        if not cfgs:
            print_log(f"{BACKBONE_TYPE}({self.model_name}): no init_cfg, the backbone starts from random weights",
                      logger="current")
        original, self.init_cfg = self.init_cfg, (others or None)
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        for cfg in pretrained:
            self.load_pretrained(cfg["checkpoint"], prefix=cfg.get("prefix"),
                                 map_location=cfg.get("map_location", "cpu"))

    def load_pretrained(self, checkpoint: str, prefix: str | None = None, map_location: str = "cpu") -> None:
        """Load the network's weights from a checkpoint, every backbone weight required."""
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise CheckpointError(f"init_cfg checkpoint must be a path or URL, got {checkpoint!r}")
        checkpoint = str(checkpoint)
        state = state_dict_from_checkpoint(_load_checkpoint_file(checkpoint, map_location), checkpoint)
        if prefix:
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if not state:
                raise CheckpointError(f"{checkpoint!r} has no key starting with the init_cfg prefix {prefix!r}")
        wanted = self.net.model.state_dict()
        matched = match_state_dict(wanted, state, checkpoint, optional=("num_batches_tracked",))
        self.net.model.load_state_dict(matched, strict=False)
        print_log(f"{BACKBONE_TYPE}({self.model_name}): loaded {len(matched)}/{len(wanted)} weights from "
                  f"{checkpoint}", logger="current")


# ----------------------------------------------------------------------------- configs
def backbone_channels(backbone: Mapping[str, Any]) -> tuple[int, ...]:
    """The channels of the levels an :class:`NNIDecoupleBackbone` config returns, without weights
    (built on the ``meta`` device: shapes only)."""
    cfg = {k: v for k, v in backbone.items() if k in ("model", "out_indices", "model_kwargs")}
    out_indices = cfg.get("out_indices", (0, 1, 2, 3))
    with torch.device("meta"):
        net = create_feature_model(cfg["model"], out_indices, cfg.get("model_kwargs"))
    return tuple(net.feature_info.channels())


def _in_index_channels(channels: Sequence[int], in_index: Any) -> int | list[int]:
    if isinstance(in_index, int):
        return channels[in_index]
    return [channels[i] for i in in_index]


def sync_in_channels(cfg: Any) -> list[str]:
    """Set the neck's (or, without a neck, the heads') ``in_channels`` to the backbone's channels.

    mm configs spell the channels out, so switching the backbone of a config would otherwise need
    more than one line. Touches only models whose backbone is :class:`NNIDecoupleBackbone`, only
    an FPN-style neck (one ``in_channels`` entry per level) or mmseg heads with ``in_index``; returns
    what changed, as ``key: old -> new`` lines.
    """
    model = cfg.get("model") if hasattr(cfg, "get") else None  # an mmengine Config or a plain dict
    backbone = model.get("backbone") if isinstance(model, Mapping) else None
    if not isinstance(backbone, Mapping) or backbone.get("type") not in (BACKBONE_TYPE, NNIDecoupleBackbone):
        return []
    channels = list(backbone_channels(backbone))
    changes: list[str] = []

    def update(part: Any, key: str, new: Any) -> None:
        old = part.get("in_channels")
        if isinstance(old, tuple):
            old = list(old)
        if old != new:
            part["in_channels"] = new
            changes.append(f"{key}.in_channels: {old} -> {new}")

    neck = model.get("neck")
    necks = neck if isinstance(neck, list) else [neck] if neck else []
    if necks:
        first = necks[0]
        if isinstance(first.get("in_channels"), (list, tuple)) and len(first["in_channels"]) == len(channels):
            update(first, "model.neck" if not isinstance(neck, list) else "model.neck[0]", channels)
        return changes
    for key in ("decode_head", "auxiliary_head"):
        heads = model.get(key)
        for i, head in enumerate(heads if isinstance(heads, list) else [heads] if heads else []):
            if "in_index" in head:
                update(head, f"model.{key}" + (f"[{i}]" if isinstance(heads, list) else ""),
                       _in_index_channels(channels, head["in_index"]))
    return changes


allow_mm_checkpoints()
