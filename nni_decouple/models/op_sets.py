"""The names of the package's ops and its named op sets, without torch.

The ops themselves (``nni_decouple.models.ops``, torch) are registered under these names; keeping the
names here lets a genotype be read, checked and converted (``nni-decouple genotype``) without importing
torch. ``tests/models/test_ops_edarts.py`` checks that the registry and :data:`BUILTIN_OPS` agree.
"""

from __future__ import annotations

#: The DARTS space (Liu et al. 2019), in the order of the DARTS code.
DARTS_OPS: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
#: DARTS without ``none``: the 7-op space of D-DARTS and of Stretchable Cells.
DARTS_OPS_NO_NONE: tuple[str, ...] = DARTS_OPS[1:]
#: D-DARTS' 12-op space S_o used by DARTOpti.
S_O_OPS: tuple[str, ...] = DARTS_OPS_NO_NONE + (
    "conv_3x1_1x3", "conv_7x1_1x7", "simple_conv_1x1", "simple_conv_3x3", "bottleneck_1x3x1",
)
#: Named op sets, selectable by name from the CLI and recipes.
OP_SETS: dict[str, tuple[str, ...]] = {
    "darts": DARTS_OPS,
    "darts_no_none": DARTS_OPS_NO_NONE,
    "s_o": S_O_OPS,
}

#: eDARTS' split search spaces SS1..SS8 (Siddiqui et al., ICPR 2020, poster table "Effect of search
#: depth and operation type"): the convolutions listed per space, each space "also has skip
#: connection and pooling operations" (max and avg pool 3x3; no ``none``: the poster lists none).
#: That is all 6 pairs of {sep3, sep5, dil3, dil5} plus the 2 triples with both separable convs.
EDARTS_SPLIT_CONVS: dict[str, tuple[str, ...]] = {
    "SS1": ("sep_conv_3x3", "dil_conv_3x3"),
    "SS2": ("sep_conv_5x5", "dil_conv_5x5"),
    "SS3": ("sep_conv_3x3", "sep_conv_5x5"),
    "SS4": ("dil_conv_3x3", "dil_conv_5x5"),
    "SS5": ("sep_conv_3x3", "dil_conv_5x5"),
    "SS6": ("sep_conv_5x5", "dil_conv_3x3"),
    "SS7": ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3"),
    "SS8": ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_5x5"),
}
OP_SETS.update({name: ("max_pool_3x3", "avg_pool_3x3", "skip_connect", *convs)
                for name, convs in EDARTS_SPLIT_CONVS.items()})
#: Every op the package registers: the DARTS ops and D-DARTS' S_o additions.
BUILTIN_OPS: tuple[str, ...] = ("none", *S_O_OPS)
