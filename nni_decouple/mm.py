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

import importlib
import inspect
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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
           "backbone_levels", "Levels", "BackboneLevels", "fit_to_backbone", "init_params", "config_checkpoints",
           "check_checkpoints", "DEFAULT_CHECKPOINT", "DEFAULT_CHECKPOINT_COMMAND", "state_dict_from_checkpoint",
           "match_state_dict"]

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
        raise CheckpointError(missing_checkpoint_message("model.backbone.init_cfg.checkpoint", checkpoint))
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
    from .models import timm_models  # noqa: F401


def create_feature_model(model: str, out_indices: Sequence[int], model_kwargs: Mapping[str, Any] | None = None,
                         ) -> nn.Module:
    """A timm ``features_only`` model (``getter`` feature class) returning the levels ``out_indices``.

    ``model`` is a timm model name (``nd_*`` presets and exports included) or a genotype file / run
    directory (see :func:`_register_genotype_file`); ``model_kwargs`` go to ``timm.create_model``.
    """
    name, kwargs = _resolve_model(model, model_kwargs)
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


# ----------------------------------------------------------------------------- configs: fit to the backbone
#: Where the shipped configs read the backbone's ImageNet weights (relative to the working directory),
#: and the command that writes them there (``train``'s default run directory for this preset and data).
DEFAULT_CHECKPOINT = "runs/train-dots_imagenet-imagenet/model.pth"
DEFAULT_CHECKPOINT_COMMAND = "nni-decouple train dots_imagenet --dataset imagenet --data-root IMAGENET_DIR"


def _fmt(values: Sequence[Any]) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")"


@dataclass(frozen=True)
class Levels:
    """The feature maps one part of a model hands to the next: channels and stride of each level
    (stride = input pixels per feature pixel)."""

    channels: tuple[int, ...]
    strides: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.channels)

    def describe(self) -> str:
        plural = "s" * (len(self) != 1)
        return f"{len(self)} level{plural} (strides {_fmt(self.strides)}, channels {_fmt(self.channels)})"

    def select(self, indices: Sequence[int]) -> Levels:
        return Levels(tuple(self.channels[i] for i in indices), tuple(self.strides[i] for i in indices))


@dataclass(frozen=True)
class BackboneLevels:
    """What an :class:`NNIDecoupleBackbone` config gives: every level of the network, the ones
    ``out_indices`` selects, and the input channels the network reads."""

    model: str
    network: Levels
    out_indices: tuple[int, ...]
    in_chans: int

    @property
    def out(self) -> Levels:
        return self.network.select(self.out_indices)

    def describe(self) -> str:
        return f"the backbone ({self.model}, out_indices={_fmt(self.out_indices)})"


def _resolve_model(model: Any, model_kwargs: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The timm name of a backbone ``model`` (a name or a genotype file) and its checked ``model_kwargs``."""
    _register_nd_models()
    kwargs = dict(model_kwargs or {})
    for key in ("pretrained", "features_only", "out_indices", "feature_cls"):
        if key in kwargs:
            raise ConfigError(f"model_kwargs sets {key!r}, which the backbone decides: remove it "
                              f"(weights load through init_cfg, levels through out_indices)")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"backbone model must be a timm model name or a genotype file, got {model!r}")
    if timm.is_model(model):
        return model, kwargs
    if Path(model).expanduser().exists():
        return _register_genotype_file(Path(model).expanduser()), kwargs
    presets = sorted(n for n in timm.list_models("nd_*"))
    raise ConfigError(f"backbone model {model!r} is neither a timm model nor a genotype file; presets are "
                      f"{', '.join(presets) or '(none registered)'}")


def _check_out_indices(out_indices: Any, network: Levels, model: str) -> tuple[int, ...]:
    try:
        indices = tuple(int(i) for i in out_indices)
    except (TypeError, ValueError):
        indices = ()
    n = len(network)
    if not indices or list(indices) != sorted(set(indices)) or indices[0] < 0:
        raise ConfigError(f"model.backbone.out_indices must be distinct feature levels in increasing order, got "
                          f"{out_indices!r}; {model} has {network.describe()}")
    if indices[-1] >= n:
        k = min(len(indices), n)
        raise ConfigError(f"model.backbone.out_indices={_fmt(indices)} asks for level {indices[-1]}, but {model} has "
                          f"{network.describe()}: choose levels among 0..{n - 1}, e.g. "
                          f"model.backbone.out_indices={_fmt(range(n - k, n))}")
    return indices


def backbone_levels(backbone: Mapping[str, Any]) -> BackboneLevels:
    """Read an :class:`NNIDecoupleBackbone` config's levels from the network's timm ``feature_info``
    (built on the ``meta`` device: shapes only, no weights, no memory). Errors: :class:`ConfigError`
    for an unknown model, bad ``model_kwargs`` or ``out_indices`` outside the network's levels."""
    model = backbone.get("model")
    name, kwargs = _resolve_model(model, backbone.get("model_kwargs"))
    try:
        with torch.device("meta"):
            net = timm.create_model(name, pretrained=False, **kwargs)
    except (TypeError, ValueError, IndexError, AssertionError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"cannot build backbone {model!r} with model_kwargs={kwargs}: {e}") from e
    info = getattr(net, "feature_info", None)
    if not info or not hasattr(net, "forward_intermediates"):
        raise ConfigError(f"timm model {name!r} has no feature_info / forward_intermediates, so it cannot serve "
                          f"as a backbone here")
    network = Levels(tuple(int(i["num_chs"]) for i in info), tuple(int(i["reduction"]) for i in info))
    in_chans = next((int(m.in_channels) for m in net.modules() if isinstance(m, nn.Conv2d)), 3)
    return BackboneLevels(str(model), network, _check_out_indices(backbone.get("out_indices", (0, 1, 2, 3)),
                                                                  network, str(model)), in_chans)


def backbone_channels(backbone: Mapping[str, Any]) -> tuple[int, ...]:
    """The channels of the levels an :class:`NNIDecoupleBackbone` config returns, without weights."""
    return backbone_levels(backbone).out.channels


def _registries(cfg: Any) -> list[Any]:
    """The model registries of the config's scope (mmdet / mmseg), with every module registered."""
    scope = cfg.get("default_scope")
    if scope not in ("mmdet", "mmseg"):
        return []
    importlib.import_module(f"{scope}.utils").register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f"{scope}.registry")
    return [r for r in (getattr(registry, "MODELS", None), getattr(registry, "TASK_UTILS", None)) if r is not None]


def _class_of(part: Mapping[str, Any], registries: Sequence[Any]) -> type | None:
    kind = part.get("type")
    if isinstance(kind, type):
        return kind
    if not isinstance(kind, str):
        return None
    for registry in registries:
        found = registry.get(kind)
        if found is not None:
            return found
    return None


def init_params(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments a class takes, following ``**kwargs`` up its bases (mm heads pass most of
    theirs on to a base class: FCOSHead's ``strides`` belong to AnchorFreeHead)."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            signature = inspect.signature(init)
        except (TypeError, ValueError):
            break
        for name, p in list(signature.parameters.items())[1:]:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                params.setdefault(name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return params


def _value(part: Mapping[str, Any], params: Mapping[str, inspect.Parameter], key: str) -> Any:
    """The config's value of ``key``, else the class's default (None if it has neither)."""
    if key in part:
        return part[key]
    p = params.get(key)
    return None if p is None or p.default is inspect.Parameter.empty else p.default


def _first_line(error: BaseException) -> str:
    """An exception in one line; a bare ``assert`` (mm's checks) becomes its source line."""
    import traceback

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if not text and isinstance(error, AssertionError):
        frames = traceback.extract_tb(error.__traceback__)
        text = f"`{frames[-1].line}` failed" if frames and frames[-1].line else "an assertion failed"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _trial(cls: type, part: Mapping[str, Any], levels: Levels) -> Levels:
    """Build ``cls`` from ``part`` on the meta device and run it on feature maps of ``levels`` (shapes
    only): the levels it hands on. Raises what the class raises."""
    import copy

    args = {k: copy.deepcopy(v) for k, v in part.items() if k not in ("type", "init_cfg")}
    args = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in args.items()}
    size = max(levels.strides) * 256
    with torch.device("meta"), torch.no_grad():
        module = cls(**args)
        outs = module([torch.empty(1, c, size // s, size // s) for c, s in zip(levels.channels, levels.strides,
                                                                              strict=True)])
    outs = [outs] if torch.is_tensor(outs) else list(outs)
    return Levels(tuple(int(o.shape[1]) for o in outs), tuple(round(size / o.shape[-2]) for o in outs))


def _stride(value: Any) -> int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, tuple)) and value and len(set(value)) == 1 and isinstance(value[0], (int, float)):
        return int(value[0])
    return None


class _Fitter:
    """Checks and fills one config's level-dependent fields (see :func:`fit_to_backbone`)."""

    def __init__(self, cfg: Any, levels: BackboneLevels) -> None:
        self.cfg = cfg
        self.model = cfg["model"]
        self.levels = levels
        self.registries = _registries(cfg)
        self.changes: list[str] = []

    def sync(self, part: Any, key: str, field: str, new: Any) -> None:
        old = part.get(field)
        if isinstance(old, tuple):
            old = list(old)
        if old != new:
            part[field] = new
            self.changes.append(f"{key}.{field}: {old} -> {new}")

    # -- parts reading levels by position (mmseg heads and necks: in_index)
    def indexed(self, part: Any, key: str, params: Mapping[str, Any], levels: Levels, source: str) -> None:
        index = _value(part, params, "in_index")
        indices = [index] if isinstance(index, int) else list(index) if isinstance(index, (list, tuple)) else []
        n = len(levels)
        bad = [i for i in indices if not isinstance(i, int) or not -n <= i < n]
        if bad or not indices:
            raise ConfigError(f"{key}.in_index={index!r} reads level {bad[0] if bad else index}, but {source} "
                              f"returns {levels.describe()}: set {key}.in_index to levels among 0..{n - 1} "
                              f"({n - 1} is the deepest, stride {levels.strides[-1]})")
        if "in_channels" in part or "in_channels" in params:
            new = levels.channels[index] if isinstance(index, int) else [levels.channels[i] for i in indices]
            self.sync(part, key, "in_channels", new)

    # -- a part reading every level it is given (mmdet necks: FPN, PAFPN, ChannelMapper, ...)
    def whole(self, part: Any, key: str, levels: Levels) -> None:
        old = part.get("in_channels")
        if isinstance(old, (list, tuple)):
            self.sync(part, key, "in_channels", list(levels.channels))
        elif isinstance(old, int) and not isinstance(old, bool):  # DilatedEncoder, CTResNetNeck: the last level
            self.sync(part, key, "in_channels", levels.channels[-1])

    def neck(self, part: Any, key: str, levels: Levels, source: str) -> Levels | None:
        cls = _class_of(part, self.registries)
        params = init_params(cls) if cls else {}
        if "in_index" in params or "in_index" in part:
            self.indexed(part, key, params, levels, source)
        else:
            self.whole(part, key, levels)
        if cls is None:
            return None
        try:
            return _trial(cls, part, levels)
        except Exception as e:  # what the neck itself refuses (mm's asserts), named with the levels
            if isinstance(e, NotImplementedError) or "meta" in str(e).lower():
                return None  # an op without a meta kernel (mmcv's CARAFE, DCN...): strides unknown, not wrong
            fields = ", ".join(f"{k}={part[k]!r}" for k in ("start_level", "end_level", "num_outs") if k in part)
            raise ConfigError(f"{key} ({part.get('type')}{', ' + fields if fields else ''}) cannot take the "
                              f"{levels.describe()} of {source}: {_first_line(e)}; set {key}'s fields to fit them, "
                              f"or choose other model.backbone.out_indices") from e

    def necks(self, model: Any, backbone: Levels) -> tuple[Levels | None, str]:
        """Fit the neck(s) in order; return the levels the heads receive and what gives them."""
        neck = model.get("neck")
        source = self.levels.describe()
        if not neck:
            return backbone, source
        parts = neck if isinstance(neck, list) else [neck]
        levels: Levels | None = backbone
        for i, part in enumerate(parts):
            key = "model.neck" + (f".{i}" if isinstance(neck, list) else "")
            if levels is None:
                return None, source
            levels = self.neck(part, key, levels, source if i == 0 else "the previous neck")
            fields = ", ".join(f"{k}={part[k]!r}" for k in ("start_level", "num_outs") if k in part)
            source = f"{key} ({part.get('type')}{', ' + fields if fields else ''}) on the " \
                     f"{backbone.describe()} of {self.levels.describe()}"
        return levels, source

    # -- heads
    def stride_fields(self, node: Any, key: str) -> Iterator[tuple[str, list[int], bool]]:
        """(config key, strides, whole) of every stride list below a head: ``strides`` of heads and prior
        generators (one per level received), ``featmap_strides`` of RoI extractors (the first levels)."""
        if isinstance(node, Mapping):
            cls = _class_of(node, self.registries) if "type" in node else None
            params = init_params(cls) if cls else {}
            for field, whole in (("strides", True), ("featmap_strides", False)):
                value = _value(node, params, field) if (cls is not None or field in node) else None
                if isinstance(value, (list, tuple)) and value:
                    strides = [_stride(v) for v in value]
                    if all(s is not None for s in strides):
                        yield f"{key}.{field}", strides, whole  # type: ignore[misc]
            for k, v in node.items():
                if k not in ("strides", "featmap_strides", "train_cfg", "test_cfg", "init_cfg"):
                    yield from self.stride_fields(v, f"{key}.{k}")
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                yield from self.stride_fields(v, f"{key}.{i}")

    def heads(self, model: Any, levels: Levels | None, source: str) -> list[tuple[str, list[int], bool]]:
        fields = []
        for name in [k for k in model if k.endswith("head")]:
            heads = model[name]
            for i, head in enumerate(heads if isinstance(heads, list) else [heads]):
                if not isinstance(head, Mapping):
                    continue
                key = f"model.{name}" + (f".{i}" if isinstance(heads, list) else "")
                cls = _class_of(head, self.registries)
                params = init_params(cls) if cls else {}
                if levels is not None and ("in_index" in params or "in_index" in head):
                    self.indexed(head, key, params, levels, source)
                elif levels is not None and not model.get("neck") and isinstance(head.get("in_channels"), int) \
                        and len(levels) == 1:
                    self.sync(head, key, "in_channels", levels.channels[0])
                fields += list(self.stride_fields(head, key))
        return fields


def _stride_mismatch(fields: Sequence[tuple[str, list[int], bool]], levels: Levels) -> tuple[str, list[int]] | None:
    for key, strides, whole in fields:
        got = list(levels.strides) if whole else list(levels.strides[: len(strides)])
        if got != strides:
            return key, strides
    return None


def _stride_fix(cfg: Any, levels: BackboneLevels, fields: Sequence[tuple[str, list[int], bool]]) -> str | None:
    """Another ``out_indices`` and / or, for a neck with ``start_level``, another start level under which
    every stride field matches, tried on the meta device: the current out_indices first, then the
    windows of levels closest in length, deepest first."""
    import copy

    neck = cfg["model"].get("neck")
    if isinstance(neck, list):
        return None
    registries = _registries(cfg)
    cls = _class_of(neck, registries) if neck else None
    n = len(levels.network)
    windows = sorted({tuple(range(a, b + 1)) for a in range(n) for b in range(a, n)},
                     key=lambda w: (w != levels.out_indices, abs(len(w) - len(levels.out_indices)), -w[-1]))
    starts = [neck.get("start_level", 0)] if neck else [None]
    if neck and "start_level" in (init_params(cls) if cls else {}):
        starts += [s for s in range(n) if s != starts[0]]
    for window in windows:
        for start in starts:
            selected = levels.network.select(window)
            if neck and cls is not None:
                part = copy.deepcopy(dict(neck))
                if isinstance(part.get("in_channels"), (list, tuple)):
                    part["in_channels"] = list(selected.channels)
                if start is not None and start != part.get("start_level", 0):
                    if start >= len(window):
                        continue
                    part["start_level"] = start
                try:
                    out = _trial(cls, part, selected)
                except Exception:  # noqa: BLE001 - a candidate the neck refuses is no fix
                    continue
            elif neck:
                return None
            else:
                out = selected
            if _stride_mismatch(fields, out) is None:
                fix = []
                if window != levels.out_indices:
                    fix.append(f"model.backbone.out_indices={_fmt(window)}")
                if neck and start != neck.get("start_level", 0):
                    fix.append(f"model.neck.start_level={start}")
                return " and ".join(fix) or None
    return None


def _pipelines(cfg: Any) -> Iterator[dict]:
    for d in _walk_dicts(cfg._cfg_dict if hasattr(cfg, "_cfg_dict") else cfg):
        if isinstance(d.get("pipeline"), list):
            yield from (step for step in d["pipeline"] if isinstance(step, dict))


def _walk_dicts(value: Any) -> Iterator[dict]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk_dicts(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk_dicts(v)


def _fit_input(cfg: Any, levels: BackboneLevels, changes: list[str]) -> None:
    """The images the config feeds must have the channels the network reads (data preprocessor's
    mean / std); a one-channel network with a one-value mean gets its images loaded as grayscale."""
    pre = cfg["model"].get("data_preprocessor") or {}
    mean = pre.get("mean")
    if not isinstance(mean, (list, tuple)):
        return
    fed, wants = len(mean), levels.in_chans
    if fed != wants:
        if wants == 1:
            fix = ("feed grayscale images: --cfg-options model.data_preprocessor.mean=[123.675] "
                   "model.data_preprocessor.std=[58.395] (transfer then loads the images as grayscale)")
        else:
            fix = f"use a network that reads {fed} channels (model_kwargs=dict(in_chans={fed}), or an export with " \
                  f"--in-chans {fed})"
        raise ConfigError(f"the backbone reads {wants} input channel{'s' * (wants != 1)} ({levels.model}), but the "
                          f"config feeds {fed} (model.data_preprocessor.mean has {fed} values): {fix}")
    if wants == 1:
        for key in ("bgr_to_rgb", "rgb_to_bgr"):
            if pre.get(key):
                pre[key] = False
                changes.append(f"model.data_preprocessor.{key}: True -> False (one channel has no colour order)")
        for step in _pipelines(cfg):
            if step.get("type") == "LoadImageFromFile" and step.get("color_type", "color") != "grayscale":
                step["color_type"] = "grayscale"
                changes.append("LoadImageFromFile.color_type: color -> grayscale (a 1-channel backbone)")
            if step.get("type") == "PhotoMetricDistortion":
                raise ConfigError("PhotoMetricDistortion needs colour images and this backbone reads 1 channel: "
                                  "remove it from the pipeline, or use a 3-channel network")


def fit_to_backbone(cfg: Any) -> list[str]:
    """Check and fill every field of a config that depends on its :class:`NNIDecoupleBackbone`'s levels,
    before mmengine builds anything. Returns the fields it filled, as ``key: old -> new`` lines.

    The backbone's levels (count, channels, strides, input channels) are read once, from the network's
    timm ``feature_info``. Then, found by the neck and heads' own signatures (mmdet 3.x, mmseg 1.x):

    - ``in_channels`` of a neck that reads every level (FPN, PAFPN, ChannelMapper...) or of a part that
      reads levels by ``in_index`` (mmseg heads): filled, it has one right value;
    - ``out_indices`` outside the network's levels, ``in_index`` outside the levels received: refused;
    - the neck is built and run on the meta device, so what it refuses (``start_level``, ``num_outs``...)
      is refused here with the levels named, and the strides it hands on are known;
    - ``strides`` of heads and prior generators and ``featmap_strides`` of RoI extractors against those
      strides: refused on a mismatch, with an ``out_indices`` / ``start_level`` that fits if one exists;
    - the data preprocessor's channels against the network's input channels; ``model.pretrained``.

    Errors: :class:`ConfigError`, one line naming the field, the backbone's levels and the fix.
    Configs whose backbone is not an :class:`NNIDecoupleBackbone` are left alone.
    """
    model = cfg.get("model") if hasattr(cfg, "get") else None
    backbone = model.get("backbone") if isinstance(model, Mapping) else None
    if not isinstance(backbone, Mapping) or backbone.get("type") not in (BACKBONE_TYPE, NNIDecoupleBackbone):
        return []
    if model.get("pretrained") is not None:
        raise ConfigError(f"model.pretrained={model['pretrained']!r} is set: mmseg hands it to the backbone, and "
                          f"{BACKBONE_TYPE} loads weights through init_cfg; set model.pretrained=None (and "
                          f"model.backbone.init_cfg.checkpoint=PATH for this network's weights)")
    levels = backbone_levels(backbone)
    changes: list[str] = []
    _fit_input(cfg, levels, changes)
    fitter = _Fitter(cfg, levels)
    received, source = fitter.necks(model, levels.out)
    fields = fitter.heads(model, received, source)
    if received is not None:
        mismatch = _stride_mismatch(fields, received)
        if mismatch is not None:
            key, strides = mismatch
            fix = _stride_fix(cfg, levels, fields)
            advice = f"set {fix}" if fix else (
                f"no out_indices of {levels.model} ({levels.network.describe()}) gives them; use a network "
                f"whose levels have the strides the detector was designed for (an ImageNet-stem network: 4-32)")
            raise ConfigError(f"{key}={strides} expects features at strides {_fmt(strides)}, but {source} gives "
                              f"strides {_fmt(received.strides)}: {advice}")
    return changes + fitter.changes


def config_checkpoints(cfg: Any) -> list[tuple[str, str]]:
    """(config key, path) of every checkpoint a config reads: ``Pretrained`` init_cfgs anywhere in the
    model, ``model.pretrained`` and ``load_from``."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, key: str) -> None:
        if isinstance(node, Mapping):
            if node.get("type") == "Pretrained" and isinstance(node.get("checkpoint"), str):
                found.append((f"{key}.checkpoint", node["checkpoint"]))
            for k, v in node.items():
                walk(v, f"{key}.{k}")
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{key}.{i}")

    model = cfg.get("model")
    walk(model, "model")
    if isinstance(model, Mapping) and isinstance(model.get("pretrained"), str):
        found.append(("model.pretrained", model["pretrained"]))
    if isinstance(cfg.get("load_from"), str) and cfg.get("load_from"):
        found.append(("load_from", cfg["load_from"]))
    return found


def missing_checkpoint_message(key: str, path: str) -> str:
    """One line: a checkpoint the config reads does not exist, and how to make or replace it."""
    if path == DEFAULT_CHECKPOINT:
        return (f"{key}: the default backbone checkpoint {DEFAULT_CHECKPOINT!r} does not exist: make it with "
                f"`{DEFAULT_CHECKPOINT_COMMAND}`, pass another with --cfg-options {key}=PATH, or start from "
                f"random weights with --cfg-options model.backbone.init_cfg=None")
    if key == "load_from":
        return f"load_from {path!r} does not exist: pass an existing checkpoint, or load_from=None"
    return f"{key} {path!r} does not exist: pass an existing checkpoint with --cfg-options {key}=PATH"


def check_checkpoints(cfg: Any) -> None:
    """Refuse a config that reads a local checkpoint that is not there (URLs are left to mmengine)."""
    for key, path in config_checkpoints(cfg):
        if not _URL.match(path) and not Path(path).expanduser().is_file():
            raise CheckpointError(missing_checkpoint_message(key, path))

allow_mm_checkpoints()
