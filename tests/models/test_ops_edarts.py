"""eDARTS' split search spaces SS1..SS8: exactly the poster's ops, each plus skip and pooling."""

from __future__ import annotations

import pytest

from nni_decouple.models.ops import OP_SETS, resolve_ops
from nni_decouple.spaces import CellSpace

# The poster's table, transcribed: convolutions per split space.
POSTER = {
    "SS1": {"sep_conv_3x3", "dil_conv_3x3"},
    "SS2": {"sep_conv_5x5", "dil_conv_5x5"},
    "SS3": {"sep_conv_3x3", "sep_conv_5x5"},
    "SS4": {"dil_conv_3x3", "dil_conv_5x5"},
    "SS5": {"sep_conv_3x3", "dil_conv_5x5"},
    "SS6": {"sep_conv_5x5", "dil_conv_3x3"},
    "SS7": {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3"},
    "SS8": {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_5x5"},
}
SKIP_AND_POOLING = {"skip_connect", "max_pool_3x3", "avg_pool_3x3"}


@pytest.mark.parametrize("name", sorted(POSTER))
def test_split_space_holds_exactly_its_ops(name: str) -> None:
    ops = resolve_ops(name)
    assert len(ops) == len(set(ops)) == len(POSTER[name]) + 3
    assert set(ops) == POSTER[name] | SKIP_AND_POOLING


def test_eight_distinct_split_spaces() -> None:
    spaces = {name: frozenset(ops) for name, ops in OP_SETS.items() if name.startswith("SS")}
    assert sorted(spaces) == [f"SS{i}" for i in range(1, 9)]
    assert len(set(spaces.values())) == 8


def test_split_space_builds() -> None:
    space = CellSpace(ops="SS3", channels=2, layers=3, nodes=2, num_classes=3, in_chans=1)
    assert space.op_names == ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5")


def test_the_torch_free_op_names_are_the_registered_ops():
    """``op_sets.BUILTIN_OPS`` (what `nni-decouple genotype` checks op names against without torch) names
    exactly the ops ``ops.py`` registers; ops registered elsewhere (a user's, a test's) are not built in."""
    from nni_decouple.models.op_sets import BUILTIN_OPS
    from nni_decouple.models.ops import OPS

    ours = {name for name, factory in OPS.items() if factory.__module__ == "nni_decouple.models.ops"}
    assert ours == set(BUILTIN_OPS) and len(BUILTIN_OPS) == len(set(BUILTIN_OPS))
