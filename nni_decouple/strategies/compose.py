"""Compose a search from one choice per axis: space x op weights x topology x schedule x derivation.

Each of the five papers decouples one part of DARTS and says the idea carries over to other
DARTS variants. The axes (docs/architecture.md) make that literal: :func:`compose` builds a
:class:`ComposedStrategy` from one registered entry per axis (``WEIGHTS``, ``TOPOLOGIES``,
``SCHEDULES``, ``DERIVES`` of :mod:`nni_decouple.search`, and :data:`SPACES` here), so e.g. a
stretchable (output-edge) topology in a per-layer space, or eDARTS' sparse schedule under DOTS'
topology, is one call. Everything is data:

- :data:`SPACES`: how cells share parameters (``cell``, ``global``, ``distributed``);
- :data:`RULES`: which choices need which others, each with the reason; :func:`check` raises a
  :class:`~nni_decouple.errors.ConfigError` naming both axes of every conflict and the fix;
- :data:`ENTRY_OPTIONS`: options an entry needs to mean something when composed (a fixed path);
- :data:`ADAPTERS`: what a schedule does to the other axes (DOTS' staged schedule wraps any op
  search in the survivors it prunes to);
- :data:`EDGES`: the mixed-edge implementations (all ops, ``none`` skipped, partial channels);
- :data:`PRESETS`: DARTS and the five methods as named compositions with their published options.

The method classes (:class:`~.dots.DOTS`, ...) keep their paper-level options (``--edges two``,
``--op-search gdas``) and translate them to the same axes; ``tests/strategies/test_compose.py``
checks that each preset gives the class's architecture parameters, loss and genotype.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import yaml

from ..errors import ConfigError
from ..search import load_all as load_search_axes
from ..search.derive import DERIVES
from ..search.edges import MixedEdge
from ..search.edges.nonzero import NonZeroMixedEdge
from ..search.edges.partial import partial_channel_edges
from ..search.schedules import SCHEDULES
from ..search.topology import TOPOLOGIES
from ..search.weights import WEIGHTS
from .base import DecoupledStrategy
from .edarts import search_loaders
from .methods.compose import AXES, SET_TARGETS, SPACES

# ----------------------------------------------------------------------------- axis choices
#: Registered entries that are not a choice of their own: ``survivors`` is what the staged
#: schedule wraps around the op weights you choose (see :data:`ADAPTERS`).
HIDDEN: dict[str, frozenset[str]] = {"weights": frozenset({"survivors"})}


def registries() -> dict[str, Mapping[str, Any]]:
    load_search_axes()
    return {"space": SPACES, "weights": WEIGHTS, "topology": TOPOLOGIES, "schedule": SCHEDULES, "derive": DERIVES}


def choices(axis: str) -> list[str]:
    """The choices of ``axis``: the registry's entries (in registration order) minus hidden ones."""
    hidden = HIDDEN.get(axis, frozenset())
    return [name for name in registries()[axis] if name not in hidden]


@dataclass(frozen=True)
class Composition:
    """One choice per axis (the defaults are DARTS)."""

    space: str = "cell"
    weights: str = "softmax"
    topology: str = "none"
    schedule: str = "bilevel"
    derive: str = "top2"

    def axes(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return " ".join(f"--{axis} {value}" for axis, value in self.axes().items())


# ----------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """``axis`` in ``values`` needs ``other`` in ``allowed``, because ``reason``."""

    axis: str
    values: frozenset[str]
    other: str
    allowed: frozenset[str]
    reason: str

    def applies(self, composition: Composition) -> bool:
        axes = composition.axes()
        return axes[self.axis] in self.values and axes[self.other] not in self.allowed

    def fix(self) -> str:
        return f"use --{self.other} {' or '.join(sorted(self.allowed))}"


def _rule(axis: str, values: str, other: str, allowed: str, reason: str) -> Rule:
    return Rule(axis, frozenset(values.split()), other, frozenset(allowed.split()), reason)


COMBINATION_TOPOLOGIES = "input_pairs input_any output_pairs output_any"
GATED_WEIGHTS = "sigmoid ddarts"

#: Validity rules as data. Choices no rule mentions (e.g. a newly registered entry) combine freely.
RULES: tuple[Rule, ...] = (
    _rule("weights", "factorised", "space", "global",
          "factorised alpha-beta-gamma weights have a beta and a gamma per layer and one alpha shared by all "
          "layers: they need one cell per layer that may share parameters across layers"),
    _rule("weights", "ddarts", "space", "distributed",
          "D-DARTS' weights are sigmoid(alpha) of each cell on its own (or started from a handcrafted "
          "network's cells); on other spaces use --weights sigmoid"),
    _rule("schedule", "percell", "space", "distributed",
          "per-cell optimizers need one cell per layer that shares no parameter with another cell"),
    _rule("space", "distributed", "schedule", "percell",
          "a distributed space searches every cell with its own optimizer (for one optimizer over per-layer "
          "cells use --space global)"),
    _rule("schedule", "percell", "weights", GATED_WEIGHTS,
          "the per-cell schedule's zero-one loss pushes independent sigmoid gates to 0 or 1"),
    _rule("derive", "threshold", "weights", f"{GATED_WEIGHTS} factorised",
          "the threshold rule compares an op's gate in [0, 1] with 0.85; softmax weights share 1 between ops"),
    _rule("derive", "sparse edge", "weights", GATED_WEIGHTS,
          "D-DARTS' derivations compare each op's sigmoid gate with 0.85; softmax weights share 1 between ops"),
    _rule("derive", "dots", "topology", "input_pairs input_any",
          "the dots derivation takes each node's argmax input combination"),
    _rule("derive", "stretchable", "topology", COMBINATION_TOPOLOGIES,
          "the stretchable derivation takes the argmax edge combination of every node"),
    _rule("topology", "input_pairs input_any", "derive", "dots stretchable",
          "a topology over input combinations is derived by its argmax combination, not edge by edge"),
    _rule("topology", "output_pairs output_any", "derive", "stretchable",
          "an output-edge topology is derived by its argmax codes (which successors each node feeds)"),
    _rule("topology", "path", "derive", "path",
          "a fixed search path is derived along the path (its edges, each with its best op)"),
    _rule("derive", "path", "topology", "path", "the path derivation needs a fixed path to follow"),
    _rule("schedule", "staged", "topology", COMBINATION_TOPOLOGIES,
          "the staged schedule's second stage searches the topology: it needs topology parameters over "
          "edge combinations"),
)


@dataclass(frozen=True)
class Conflict:
    rule: Rule
    composition: Composition

    def __str__(self) -> str:
        axes = self.composition.axes()
        return (f"--{self.rule.axis} {axes[self.rule.axis]} does not combine with --{self.rule.other} "
                f"{axes[self.rule.other]}: {self.rule.reason}; {self.rule.fix()}")


def conflicts(composition: Composition) -> list[Conflict]:
    return [Conflict(rule, composition) for rule in RULES if rule.applies(composition)]


def check(composition: Composition) -> Composition:
    """Raise :class:`ConfigError` for unknown choices and for every conflict between two axes."""
    for axis, value in composition.axes().items():
        if value not in choices(axis):
            raise ConfigError(f"unknown --{axis} {value!r}: choose one of {', '.join(choices(axis))}")
    found = conflicts(composition)
    if found:
        raise ConfigError("; and ".join(map(str, found)))
    return composition


def all_compositions() -> Iterator[Composition]:
    """Every composition of the registered choices, valid or not."""
    for values in itertools.product(*(choices(axis) for axis in AXES)):
        yield Composition(*values)


def valid_compositions() -> list[Composition]:
    return [c for c in all_compositions() if not conflicts(c)]


def incompatible_pairs() -> dict[tuple[tuple[str, str], tuple[str, str]], str]:
    """``{((axis, choice), (other, choice)): reason}``: every pair of choices some rule forbids."""
    pairs = {}
    for rule in RULES:
        for value in sorted(rule.values):
            for other in choices(rule.other):
                if other not in rule.allowed:
                    pairs[(rule.axis, value), (rule.other, other)] = rule.reason
    return pairs


# ----------------------------------------------------------------------------- entry options and adapters
#: Options an entry gets when composed unless given: a ``path`` topology follows a fixed path
#: (``inputs``: every node takes both cell inputs; ``full`` would just be DARTS).
ENTRY_OPTIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("topology", "path"): {"path": "inputs"},
}

#: Mixed-edge implementations: ``edges`` option -> ``factory(**edge_options) -> edge_factory``.
EDGES: dict[str, Callable[..., Any]] = {
    "mixed": lambda: MixedEdge,
    "nonzero": lambda: NonZeroMixedEdge,
    "partial": partial_channel_edges,
}


@dataclass
class Parts:
    """What a :class:`ComposedStrategy` passes to :class:`DecoupledStrategy`; adapters may rewrite it."""

    weights: str
    weights_options: dict[str, Any]
    edges: str = "mixed"
    edge_options: dict[str, Any] = field(default_factory=dict)


def _staged(parts: Parts, composition: Composition, survivor_options: Mapping[str, Any]) -> Parts:
    """DOTS' staged schedule prunes each edge to survivors of the op search: the chosen op weights
    become the op search of ``survivors`` (the best op of each group after a ``grouped`` search, the
    best op otherwise, as the paper's Method 1), and ``none`` is not computed."""
    keep = "groups" if parts.weights == "grouped" else 1
    options = {"search": parts.weights, "search_options": parts.weights_options, "keep": keep, "choice_scale": 1e-3,
               **survivor_options}
    edges = parts.edges if parts.edges != "mixed" else "nonzero"
    return replace(parts, weights="survivors", weights_options=options, edges=edges)


#: Schedules that rewrite the other axes: ``adapter(parts, composition, survivor_options) -> parts``.
ADAPTERS: dict[str, Callable[[Parts, Composition, Mapping[str, Any]], Parts]] = {"staged": _staged}
#: Schedules that can load validation batches lazily (only for steps that update the architecture).
LAZY_VAL_SCHEDULES = frozenset({"sparse"})


# ----------------------------------------------------------------------------- the strategy
class ComposedStrategy(DecoupledStrategy):
    """A :class:`DecoupledStrategy` built from a :class:`Composition` (use :func:`compose`).

    Besides the axes' options it takes ``edges``/``edge_options`` (:data:`EDGES`), the survivors
    of a staged schedule (``survivor_options``), and eDARTS' data subset for any schedule
    (``subset``, ``balanced``, ``seed``; ``lazy_val`` for the sparse schedule).
    """

    def __init__(self, composition: Composition, *, weights_options: dict[str, Any] | None = None,
                 topology_options: dict[str, Any] | None = None, derive_options: dict[str, Any] | None = None,
                 schedule_options: dict[str, Any] | None = None, survivor_options: dict[str, Any] | None = None,
                 edges: str = "mixed", edge_options: dict[str, Any] | None = None, subset: float | None = None,
                 balanced: bool = False, seed: int = 0, lazy_val: bool | None = None, **kwargs: Any) -> None:
        check(composition)
        c = composition
        if edges not in EDGES:
            raise ConfigError(f"unknown edges {edges!r}: choose one of {', '.join(EDGES)}")
        if subset is not None and not 0.0 < subset <= 1.0:
            raise ConfigError(f"subset must be a fraction in (0, 1], got {subset}")
        if lazy_val is None:
            lazy_val = c.schedule in LAZY_VAL_SCHEDULES
        if lazy_val and c.schedule not in LAZY_VAL_SCHEDULES:
            raise ConfigError(f"lazy_val loads validation batches only for architecture steps, which --schedule "
                              f"{c.schedule} does not announce: use it with --schedule "
                              f"{' or '.join(sorted(LAZY_VAL_SCHEDULES))}")
        if survivor_options and c.schedule not in ADAPTERS:
            raise ConfigError(f"survivor options only apply to --schedule staged, not {c.schedule}")

        def options(axis: str, name: str, given: dict[str, Any] | None) -> dict[str, Any]:
            return {**ENTRY_OPTIONS.get((axis, name), {}), **dict(given or {})}

        parts = Parts(c.weights, options("weights", c.weights, weights_options), edges, dict(edge_options or {}))
        if c.schedule in ADAPTERS:
            parts = ADAPTERS[c.schedule](parts, c, dict(survivor_options or {}))
        super().__init__(weights=parts.weights, weights_options=parts.weights_options, topology=c.topology,
                         topology_options=options("topology", c.topology, topology_options), derive=c.derive,
                         derive_options=options("derive", c.derive, derive_options),
                         edge_factory=EDGES[parts.edges](**parts.edge_options),
                         schedule_options=options("schedule", c.schedule, schedule_options), **kwargs)
        self.composition = c
        self.space_sharing, self.space_what = SPACES[c.space].sharing, f"--space {c.space}"
        self.schedule_cls = SCHEDULES[c.schedule]
        self.edges, self.subset, self.balanced, self.seed, self.lazy_val = edges, subset, balanced, seed, lazy_val


    def train_dataloader(self, train_dataloader_fn: Any, val_dataloader_fn: Any) -> dict[str, Any]:
        return search_loaders(train_dataloader_fn(), val_dataloader_fn(), subset=self.subset, seed=self.seed,
                              balanced=self.balanced, lazy_val=self.lazy_val)

    def genotype_meta(self, config: Any) -> dict[str, Any]:
        return {"composition": self.composition.axes()}


# ----------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """A named composition with the method's published options.

    ``options`` are :func:`compose` keyword arguments; ``<axis>_options`` apply only while that
    axis keeps the preset's choice. ``space`` holds the CLI space options (ops, nodes).
    """

    composition: Composition
    paper: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "darts": Preset(Composition(), "DARTS (Liu et al., ICLR 2019), first order", "DecoupledStrategy()",
                    space={"ops": "darts"}),
    "dots": Preset(
        Composition("cell", "grouped", "input_pairs", "staged", "dots"),
        "DOTS (Gu et al., CVPR 2021)", "DOTS()", space={"ops": "darts", "nodes": 4}),
    "stretchable": Preset(
        Composition("cell", "softmax", "output_any", "milenas", "stretchable"),
        "Stretchable Cells (Huang et al., AAAI 2022), MiLeNAS-SC", "StretchableCells()",
        options={"topology_options": {"reg_lambda": 10.0, "scale": True, "init_scale": 1e-3, "include_empty": True},
                 "schedule_options": {"lambda_train": 1.0, "lambda_val": 1.0, "shared_forward": True}},
        space={"ops": "darts_no_none", "nodes": 7}),
    "dnas": Preset(
        Composition("global", "factorised", "none", "bilevel", "top2"),
        "DNAS (Xu & He, CVPRW 2021)", "DNAS()",
        options={"weights_options": {"sigma_alpha": "sigmoid", "sigma_beta": "softmax", "sigma_gamma": "sigmoid",
                                     "beta_scope": "cell", "alpha_sharing": "all", "w01": 10.0,
                                     "zero_one": ("alpha", "gamma"), "init_scale": 1e-3},
                 "edges": "partial", "edge_options": {"k": 4, "skip_drop": 0.2}},
        space={"ops": "darts_no_none"}),
    "ddarts": Preset(
        Composition("distributed", "ddarts", "none", "percell", "sparse"),
        "D-DARTS (Heuillet et al., PRL 2023)", "DDARTS()",
        options={"weights_options": {"start": None, "share_identical": True, "high": 10.0, "low": 0.0},
                 "derive_options": {"threshold": 0.85},
                 "schedule_options": {"arc_betas": (0.9, 0.999), "arc_weight_decay": 1e-3,
                                      "arc_learning_rate_min": 1e-3, "w01": 7.0, "wabl": 0.5, "ablation": "exact",
                                      "deactivate": "zero"},
                 "arc_learning_rate": 3e-3, "warmup_epochs": 0},
        space={"ops": "darts_no_none"}),
    "edarts": Preset(
        Composition("cell", "softmax", "none", "sparse", "top2"),
        "eDARTS (Siddiqui et al., ICPR 2020)", "EDARTS()",
        options={"schedule_options": {"arch_update_every": "epoch"}, "subset": 0.1, "lazy_val": True},
        space={"ops": "darts"}),
}

_AXIS_OPTIONS = {"weights": "weights_options", "topology": "topology_options", "schedule": "schedule_options",
                 "derive": "derive_options"}


def resolve(preset: str | None = None, **axes: str | None) -> tuple[Composition, dict[str, Any]]:
    """The composition of ``preset`` with ``axes`` overriding it, and the preset options that still apply
    (an axis's options are dropped when that axis is changed)."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown --preset {preset!r}: choose one of {', '.join(PRESETS)}")
    base = PRESETS[preset] if preset is not None else Preset(Composition(), "", "")
    unknown = set(axes) - set(AXES)
    if unknown:
        raise ConfigError(f"unknown axis {', '.join(sorted(unknown))}: the axes are {', '.join(AXES)}")
    composition = replace(base.composition, **{k: v for k, v in axes.items() if v is not None})
    options = dict(base.options)
    for axis, key in _AXIS_OPTIONS.items():
        if getattr(composition, axis) != getattr(base.composition, axis):
            options.pop(key, None)
    if composition.schedule != base.composition.schedule and "lazy_val" in options:
        options.pop("lazy_val")
    return composition, options


def compose(space: str | None = None, weights: str | None = None, topology: str | None = None,
            schedule: str | None = None, derive: str | None = None, *, preset: str | None = None,
            **options: Any) -> ComposedStrategy:
    """A strategy from one choice per axis (unset axes: the preset's, or DARTS').

    ``options`` go to :class:`ComposedStrategy` (``weights_options``, ``schedule_options``, ``edges``,
    ``subset``, ``arc_learning_rate``, ...) on top of the preset's; ``<axis>_options`` dicts are merged.
    """
    composition, preset_options = resolve(preset, space=space, weights=weights, topology=topology,
                                          schedule=schedule, derive=derive)
    merged = dict(preset_options)
    for key, value in options.items():
        if key.endswith("_options") and isinstance(merged.get(key), dict) and value is not None:
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return ComposedStrategy(composition, **merged)


# ----------------------------------------------------------------------------- CLI
#: Preset options the CLI also has as common flags (flag dest -> option).
_COMMON_FLAGS = {"arch_lr": "arc_learning_rate", "grad_clip": "gradient_clip_val"}
_SET_TARGETS = SET_TARGETS


def parse_sets(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``['schedule.stage_epochs=[0,1,0,1]', 'weights.w01=10']`` -> ``{'schedule_options': {...}, ...}``
    (values are YAML: numbers, booleans, lists, strings)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or ():
        target, _, rest = item.partition(".")
        key, eq, value = rest.partition("=")
        if target not in _SET_TARGETS or not key or not eq:
            raise ConfigError(f"--set {item!r}: expected AXIS.KEY=VALUE with AXIS one of {', '.join(_SET_TARGETS)}")
        out.setdefault(_SET_TARGETS[target], {})[key] = yaml.safe_load(value)
    return out


def _composition(args: argparse.Namespace) -> tuple[Composition, dict[str, Any]]:
    return resolve(args.preset, **{axis: getattr(args, axis) for axis in AXES})


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Fix the space options the composition implies: sharing from --space; the preset's ops, nodes and
    optimisation defaults wherever the corresponding flag kept its default."""
    composition, options = _composition(args)
    check(composition)
    sharing = SPACES[composition.space].sharing
    if args.sharing not in (None, sharing):
        raise ConfigError(f"--space {composition.space} searches with --sharing {sharing}, but --sharing "
                          f"{args.sharing} was given: drop --sharing")
    args.sharing = sharing
    parser = getattr(args, "subparser", None)
    preset = PRESETS[args.preset] if args.preset else None
    if preset is not None and parser is not None:
        for name, value in preset.space.items():
            if name != "ops" and getattr(args, name, None) == parser.get_default(name):
                setattr(args, name, value)
        for flag, option in _COMMON_FLAGS.items():
            if option in options and getattr(args, flag) == parser.get_default(flag):
                setattr(args, flag, options[option])
    ops = preset.space.get("ops", "darts") if preset is not None else "darts"
    return {"ops": ops, "sharing": sharing}


def build(args: argparse.Namespace) -> ComposedStrategy:
    composition, _ = _composition(args)
    options: dict[str, Any] = dict(parse_sets(args.sets))
    if args.edges is not None:
        options["edges"] = args.edges
    options.update(arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip, seed=args.seed)
    if args.subset is not None:  # the strategy subsets its loaders (run_search then leaves the data whole)
        options.update(subset=args.subset if args.subset < 1.0 else None, balanced=args.subset_balanced)
    return compose(**composition.axes(), preset=args.preset, **options)

