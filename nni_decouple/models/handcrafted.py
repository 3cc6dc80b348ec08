"""Handcrafted networks encoded as per-layer genotypes over D-DARTS' space S_o (DARTOpti).

DARTOpti (Heuillet et al. 2023, Section 4.4) starts a D-DARTS search from a known network: each
stage of the network becomes one cell of the DARTS frame, its ops get alpha = 10 and the others
alpha = 0, and identical cells share one set of alphas. This module holds those encodings as
:class:`~nni_decouple.models.genotype.Genotype` data plus the sharing groups; it imports neither torch
nor NNI, so training and export use it too.

The DARTS cell frame fixes what an encoding can copy. A cell reads the outputs of the two previous
cells (inputs 0 = c_{k-2}, 1 = c_{k-1}), brought to C channels by a 1x1 preprocessing conv; every
edge keeps C channels; edges leaving the inputs of a reduction cell have stride 2; C doubles at
every reduction; a cell outputs the concatenation of its ``concat`` nodes. The encodings here:

- read input 1 (the previous stage) and output their last node only (``concat = [last]``), so a
  cell is one stage and outputs C channels, as a ResNet stage does;
- write a residual block as ``node_out = conv(...)(node_in) + skip_connect(node_in)``; in a
  reduction cell the shortcut from the input is ``skip_connect`` at stride 2, i.e. DARTS'
  factorised 1x1 reduction, the counterpart of ResNet's strided 1x1 projection.

With C = 64 and the ImageNet stride-4 stem (``imagenet_stride4``), ResNet-18 gives exactly its
channel/stride pattern: 64 @ 4, 128 @ 8, 256 @ 16, 512 @ 32, and 16 3x3 convolutions in 8 residual
blocks. ResNet-50 keeps its 3-4-6-3 bottleneck blocks and strides; its stage widths are C, not 4C,
because an S_o op keeps its edge's width (``bottleneck_1x3x1`` expands to 4C inside and projects
back). Xception keeps its entry (3 blocks), middle (8) and exit (1 + final) flows and their strides;
each ``sep_conv_3x3`` is DARTS' doubled separable conv.

Departures from the public D-DARTS encodings (``genotypes.py`` there), and why:

- Their ResNet/Xception genes read input 0 (c_{k-2}), so each cell skips the previous stage and
  half of the cells feed nothing (cells 0 and 2 of their ResNet-18 are dead). Ours read input 1.
- Their cells output all nodes (4C channels); ours output the last node, the stage output.
- Their Xception reduces at cells 1, 2, 11 and 12 (stride 64 after a stride-4 stem); ours at 1, 2
  and 11, Xception's own strides (4, 8, 16, 32) after the same stem.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .genotype import CellGenotype, Genotype

__all__ = ["Handcrafted", "HANDCRAFTED", "get_handcrafted", "resnet18", "resnet50", "xception"]


@dataclass(frozen=True)
class Handcrafted:
    """A handcrafted network as a per-layer genotype, plus which layers share alphas in DARTOpti."""

    name: str
    genotype: Genotype
    #: ``groups[layer]``: cells with the same group are identical and share one set of alphas.
    groups: tuple[int, ...]
    #: Network settings that reproduce the original layout with :class:`nni_decouple.models.network.DartsNetwork`.
    stem: str = "imagenet_stride4"
    channels: int = 64
    description: str = ""

    @property
    def layers(self) -> int:
        return len(self.genotype.layers)

    @property
    def nodes(self) -> int:
        """Intermediate nodes a supernet cell needs to hold every cell of the encoding."""
        return max(cell.num_nodes for cell in self.genotype.layers)

    @property
    def reductions(self) -> tuple[int, ...]:
        return self.genotype.reductions

    @property
    def ops(self) -> set[str]:
        return {op for cell in self.genotype.layers for op in cell.ops()}

    def __post_init__(self) -> None:
        if len(self.groups) != len(self.genotype.layers):
            raise ValueError(f"{self.name}: {len(self.groups)} groups for {len(self.genotype.layers)} layers")
        for g in set(self.groups):
            cells = {self.genotype.layers[i] for i, h in enumerate(self.groups) if h == g}
            if len(cells) != 1:
                raise ValueError(f"{self.name}: the cells of group {g} differ; only identical cells share alphas")


def _chain(blocks: int, conv: str) -> CellGenotype:
    """``blocks`` residual blocks in a row, one node per block: ``x_k = conv(x_{k-1}) + skip(x_{k-1})``
    with x_0 the cell's input 1 (the previous stage)."""
    nodes = []
    prev = 1
    for b in range(blocks):
        nodes.append([(conv, prev), ("skip_connect", prev)])
        prev = b + 2
    return CellGenotype.from_edges(nodes, concat=[prev])


def _basic_stage() -> CellGenotype:
    """Two ResNet basic blocks (two 3x3 convs each, identity shortcut around each block)."""
    return CellGenotype.from_edges(
        [
            [("simple_conv_3x3", 1)],                          # node 2: block 1, conv 1
            [("simple_conv_3x3", 2), ("skip_connect", 1)],     # node 3: block 1, conv 2 + shortcut
            [("simple_conv_3x3", 3)],                          # node 4: block 2, conv 1
            [("simple_conv_3x3", 4), ("skip_connect", 3)],     # node 5: block 2, conv 2 + shortcut
        ],
        concat=[5],
    )


def _xception_strided_block() -> CellGenotype:
    """Entry/exit block: sep, sep, max-pool, with a 1x1 conv shortcut (both strided in a reduction)."""
    return CellGenotype.from_edges(
        [[("sep_conv_3x3", 1)], [("sep_conv_3x3", 2)], [("max_pool_3x3", 3), ("simple_conv_1x1", 1)]],
        concat=[4],
    )


def _xception_middle_block() -> CellGenotype:
    """Middle-flow block: three separable convs with an identity shortcut."""
    return CellGenotype.from_edges(
        [[("sep_conv_3x3", 1)], [("sep_conv_3x3", 2)], [("sep_conv_3x3", 3), ("skip_connect", 1)]],
        concat=[4],
    )


def _xception_final() -> CellGenotype:
    """Exit flow's last two separable convs (no shortcut)."""
    return CellGenotype.from_edges([[("sep_conv_3x3", 1)], [("sep_conv_3x3", 2)]], concat=[3])


def resnet18() -> Handcrafted:
    stage = _basic_stage()
    return Handcrafted(
        "resnet18", Genotype(layers=(stage,) * 4, reductions=(1, 2, 3), meta={"handcrafted": "resnet18"}).validate(),
        groups=(0, 0, 0, 0),
        description="ResNet-18: 4 stages of 2 basic blocks; all stages identical, one set of alphas",
    )


def resnet50() -> Handcrafted:
    stages = tuple(_chain(blocks, "bottleneck_1x3x1") for blocks in (3, 4, 6, 3))
    return Handcrafted(
        "resnet50", Genotype(layers=stages, reductions=(1, 2, 3), meta={"handcrafted": "resnet50"}).validate(),
        groups=(0, 1, 2, 0),
        description="ResNet-50: 3-4-6-3 bottleneck blocks; stages 1 and 4 identical (3 alpha groups)",
    )


def xception() -> Handcrafted:
    strided, middle, final = _xception_strided_block(), _xception_middle_block(), _xception_final()
    layers = (strided,) * 3 + (middle,) * 8 + (strided, final)
    return Handcrafted(
        "xception", Genotype(layers=layers, reductions=(1, 2, 11), meta={"handcrafted": "xception"}).validate(),
        groups=(0,) * 3 + (1,) * 8 + (0, 2),
        description="Xception: entry (3 blocks), middle (8), exit block and final convs; 3 alpha groups",
    )


#: Encodings by name (``--start`` of ``nni-decouple search ddarts``).
HANDCRAFTED = {"resnet18": resnet18, "resnet50": resnet50, "xception": xception}


def get_handcrafted(name: str) -> Handcrafted:
    try:
        return HANDCRAFTED[name]()
    except KeyError:
        raise ConfigError(f"unknown handcrafted network {name!r}: choose one of {', '.join(HANDCRAFTED)}") from None
