"""The op registry: every op keeps the width and divides the resolution by its stride."""

from __future__ import annotations

import pytest
import torch

from nni_decouple.errors import UnknownOpError
from nni_decouple.models.ops import DARTS_OPS, OPS, S_O_OPS, create_op, is_parametric, register_op, resolve_ops


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_op_shapes(name, stride):
    op = create_op(name, 8, stride, affine=False)
    x = torch.randn(2, 8, 8, 8)
    assert op(x).shape == (2, 8, 8 // stride, 8 // stride)


def test_spaces_hold_the_published_ops():
    assert len(DARTS_OPS) == 8 and DARTS_OPS[0] == "none"
    assert len(S_O_OPS) == 12 and "none" not in S_O_OPS
    assert {"conv_3x1_1x3", "conv_7x1_1x7", "simple_conv_1x1", "simple_conv_3x3", "bottleneck_1x3x1"} < set(S_O_OPS)


def test_unknown_op_names_the_known_ones():
    with pytest.raises(UnknownOpError, match="unknown op 'sep_conv_9x9'.*sep_conv_3x3"):
        create_op("sep_conv_9x9", 8)
    with pytest.raises(UnknownOpError, match="unknown op set or op 'dartz'"):
        resolve_ops("dartz")
    with pytest.raises(UnknownOpError, match="twice"):
        resolve_ops("sep_conv_3x3,sep_conv_3x3")


def test_resolve_ops():
    assert resolve_ops("darts") == list(DARTS_OPS)
    assert resolve_ops("skip_connect, sep_conv_3x3") == ["skip_connect", "sep_conv_3x3"]


def test_register_op_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_op("none", lambda c, s, a: torch.nn.Identity())


def test_parametric_groups():
    assert not any(is_parametric(n) for n in DARTS_OPS[:4])
    assert all(is_parametric(n) for n in DARTS_OPS[4:])


def test_odd_resolution_reduces():
    op = create_op("skip_connect", 8, 2)
    assert op(torch.randn(1, 8, 7, 7)).shape == (1, 8, 4, 4)
    assert create_op("sep_conv_3x3", 8, 2)(torch.randn(1, 8, 7, 7)).shape == (1, 8, 4, 4)
