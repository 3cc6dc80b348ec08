"""Compose: the CLI side (see :mod:`nni_decouple.strategies.compose`).

The choices of every axis are named here (the search registries import torch); a test checks them
against the registries, so a new registered entry fails that test until it is listed here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .. import Method, register_method

AXES: tuple[str, ...] = ("space", "weights", "topology", "schedule", "derive")


@dataclass(frozen=True)
class Space:
    """A search-space choice: the ``CellSpace`` sharing it builds and what it means."""

    sharing: str
    help: str


SPACES: dict[str, Space] = {
    "cell": Space("type", "one normal and one reduction cell, shared by every layer of that type (DARTS)"),
    "global": Space("layer", "one cell per layer; parameters may be shared across layers (DNAS' alpha)"),
    "distributed": Space("layer", "one cell per layer, each searched by its own optimizer (D-DARTS)"),
}

#: The choices of each axis (``compose.choices(axis)``: the registries' entries less hidden ones).
AXIS_CHOICES: dict[str, tuple[str, ...]] = {
    "space": tuple(SPACES),
    "weights": ("softmax", "sigmoid", "ddarts", "factorised", "grouped", "gumbel", "softmax_prior"),
    "topology": ("none", "edge_norm", "input_pairs", "input_any", "output_any", "output_pairs", "path"),
    "schedule": ("bilevel", "milenas", "percell", "sparse", "staged"),
    "derive": ("top2", "dots", "sparse", "edge", "path", "stretchable", "threshold"),
}
#: The presets' compositions (space, weights, topology, schedule, derive), as ``compose.PRESETS`` holds them.
PRESET_AXES: dict[str, tuple[str, str, str, str, str]] = {
    "darts": ("cell", "softmax", "none", "bilevel", "top2"),
    "dots": ("cell", "grouped", "input_pairs", "staged", "dots"),
    "stretchable": ("cell", "softmax", "output_any", "milenas", "stretchable"),
    "dnas": ("global", "factorised", "none", "bilevel", "top2"),
    "ddarts": ("distributed", "ddarts", "none", "percell", "sparse"),
    "edarts": ("cell", "softmax", "none", "sparse", "top2"),
}
#: Mixed-edge implementations (``compose.EDGES``).
EDGE_NAMES: tuple[str, ...] = ("mixed", "nonzero", "partial")
#: ``--set AXIS.KEY=VALUE`` targets -> the ``compose`` keyword they fill.
SET_TARGETS = {"weights": "weights_options", "topology": "topology_options", "schedule": "schedule_options",
               "derive": "derive_options", "edges": "edge_options", "survivors": "survivor_options"}


def _composition_text(axes: tuple[str, ...]) -> str:
    return " ".join(f"--{axis} {value}" for axis, value in zip(AXES, axes, strict=True))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("composition (unset axes: the preset's, or DARTS')")
    g.add_argument("--preset", choices=list(PRESET_AXES), default=None,
                   help="start from a method: " + "; ".join(f"{n}: {_composition_text(a)}"
                                                            for n, a in PRESET_AXES.items()))
    g.add_argument("--space", choices=AXIS_CHOICES["space"], default=None,
                   help="; ".join(f"{name}: {s.help}" for name, s in SPACES.items()))
    g.add_argument("--weights", choices=AXIS_CHOICES["weights"], default=None,
                   help="op-weight parametrisation (how alpha becomes per-edge op weights)")
    g.add_argument("--topology", choices=AXIS_CHOICES["topology"], default=None,
                   help="how a node weighs its input edges (none: by op weights alone)")
    g.add_argument("--schedule", choices=AXIS_CHOICES["schedule"], default=None, help="what updates when")
    g.add_argument("--derive", choices=AXIS_CHOICES["derive"], default=None, help="supernet -> genotype")
    g.add_argument("--edges", choices=EDGE_NAMES, default=None,
                   help="mixed-edge implementation: all ops, none skipped, or PC-DARTS partial channels")
    g.add_argument("--set", dest="sets", action="append", default=None, metavar="AXIS.KEY=VALUE",
                   help=f"an option of an axis ({', '.join(SET_TARGETS)}), e.g. weights.w01=10, "
                        f"schedule.stage_epochs=[0,1,0,1], edges.k=4; repeatable")


register_method(Method(
    "compose", "any search space x op weights x topology x schedule x derivation (DARTS and the five methods are "
    "--preset)", "nni_decouple.strategies.compose:build", add_arguments,
    prepare="nni_decouple.strategies.compose:prepare", same_default_as="darts"))
