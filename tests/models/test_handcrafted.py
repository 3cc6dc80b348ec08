"""DARTOpti encodings: the handcrafted genotypes build networks with the original layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nni_decouple.errors import ConfigError
from nni_decouple.models.handcrafted import get_handcrafted
from nni_decouple.models.network import DartsNetwork


def cell_features(net: DartsNetwork) -> list[tuple[int, int]]:
    return [(f["num_chs"], f["reduction"]) for f in net.feature_info if f["module"].startswith("cells.")]


def test_resnet18_has_the_channel_and_stride_pattern_of_resnet18() -> None:
    r18 = get_handcrafted("resnet18")
    net = DartsNetwork(r18.genotype, channels=r18.channels, stem=r18.stem, num_classes=10)
    # torchvision's resnet18: layer1..layer4 output 64 @ 4, 128 @ 8, 256 @ 16, 512 @ 32.
    assert cell_features(net) == [(64, 4), (128, 8), (256, 16), (512, 32)]
    assert net.num_features == 512
    # 8 basic blocks of two 3x3 convs: 16 3x3 convolutions in the cells (stem convs excluded).
    convs3 = [m for m in net.cells.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 16
    # A forward at 64x64 gives the final 2x2 map of a stride-32 network.
    feats = net.forward_features(torch.randn(1, 3, 64, 64))
    assert feats.shape == (1, 512, 2, 2)


def test_resnet50_blocks_and_strides() -> None:
    r50 = get_handcrafted("resnet50")
    assert [cell.num_nodes for cell in r50.genotype.layers] == [3, 4, 6, 3]
    assert [cell.count("bottleneck_1x3x1") for cell in r50.genotype.layers] == [3, 4, 6, 3]
    assert r50.nodes == 6 and r50.groups == (0, 1, 2, 0)
    net = DartsNetwork(r50.genotype, channels=8, stem=r50.stem, num_classes=10)
    assert [s for _, s in cell_features(net)] == [4, 8, 16, 32]


def test_xception_flows_and_sharing() -> None:
    xc = get_handcrafted("xception")
    assert xc.layers == 13 and xc.reductions == (1, 2, 11)
    assert len(set(xc.groups)) == 3
    net = DartsNetwork(xc.genotype, channels=8, stem=xc.stem, num_classes=10)
    strides = [s for _, s in cell_features(net)]
    assert strides == [4, 8, 16, 32]  # entry (4, 8, 16), middle at 16, exit at 32


def test_identical_cells_share_a_group_and_unknown_names_fail() -> None:
    for name in ("resnet18", "resnet50", "xception"):
        net = get_handcrafted(name)
        for i, g in enumerate(net.groups):
            assert all(net.genotype.layers[i] == net.genotype.layers[j]
                       for j, h in enumerate(net.groups) if h == g)
    with pytest.raises(ConfigError, match="resnet18"):
        get_handcrafted("vgg16")
