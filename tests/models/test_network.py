"""The genotype -> network builder: sizes against the papers, cell semantics, and running without NNI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import timm
import torch
from torch import nn

from nni_decouple.errors import ConfigError, GenotypeError
from nni_decouple.models.cards import count_macs, count_params
from nni_decouple.models.genotype import CellGenotype, Edge, Genotype, save_genotype
from nni_decouple.models.network import Cell, DartsNetwork, SkippedCell, preset_genotype, preset_info, preset_names
from nni_decouple.models.ops import Identity

# The acceptance figures (params in millions, without the auxiliary head).
PUBLISHED = {
    "nd_darts_v2": 3.3,  # CIFAR-10, 36 channels, 20 cells
    "nd_darts_v2_imagenet": 4.7,  # ImageNet, 48 channels, 14 cells
    "nd_dots_c10": 3.5,
    "nd_dots_c100": 4.1,  # 100 classes
    "nd_dots_imagenet": 5.3,
}

def n_params(model: nn.Module) -> float:
    return count_params(model) / 1e6


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_params_match_the_papers(name: str) -> None:
    model = timm.create_model(name)
    assert model.aux_head is None
    assert abs(n_params(model) - PUBLISHED[name]) / PUBLISHED[name] < 0.03, n_params(model)


def test_preset_configurations_are_the_published_ones() -> None:
    assert (preset_info("nd_darts_v2")["channels"], timm.create_model("nd_darts_v2").plan.layers) == (36, 20)
    assert (preset_info("nd_darts_v2_imagenet")["channels"], timm.create_model("nd_darts_v2_imagenet").plan.layers,
            preset_info("nd_darts_v2_imagenet")["stem"]) == (48, 14, "imagenet")
    assert timm.create_model("nd_dots_c100").num_classes == 100
    # Every published figure recorded with a preset is the one the tests check, or is checked below.
    recorded = {n: preset_info(n)["published"]["params_m"] for n in preset_names() if "published" in preset_info(n)}
    assert set(PUBLISHED) <= set(recorded) and all(recorded[n] == PUBLISHED[n] for n in PUBLISHED)


@pytest.mark.parametrize("name", ["nd_dartopti_resnet18_sparse_c100_imagenet",
                                  "nd_dartopti_resnet50_sparse_c100_imagenet"])
def test_dartopti_imagenet_params_match_the_paper(name: str) -> None:
    """D-DARTS Table 3's DO-2-ResNet18 (53.4M) and DO-2-ResNet50 (73.23M), 64 channels, 1000 classes."""
    published = preset_info(name)["published"]["params_m"]
    assert abs(n_params(timm.create_model(name)) - published) / published < 0.03


def test_mac_counter_counts_multiply_accumulates() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    assert count_macs(model, (3, 4, 4)) == 8 * 4 * 4 * 3 * 9 + 8 * 4 * 4 * 5


# --------------------------------------------------------------------------- cells
def _cell(nodes: list[list[tuple[str, int]]], concat: list[int] | None = None) -> CellGenotype:
    return CellGenotype.from_edges(nodes, concat)


def test_cell_with_any_in_degree_and_partial_concat() -> None:
    # node 2: three inputs; node 3 is only an input of node 4; the cell outputs nodes 2 and 4.
    cell = _cell([[("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0)], [("dil_conv_3x3", 2)],
                  [("sep_conv_5x5", 3), ("skip_connect", 0), ("avg_pool_3x3", 1)]], concat=[2, 4])
    block = Cell(cell, 12, 12, 6, reduction=False, reduction_prev=False)
    assert block.multiplier == 2 and len(block.ops) == 7
    out = block(torch.randn(2, 12, 8, 8), torch.randn(2, 12, 8, 8))
    assert out.shape == (2, 12, 8, 8)  # C * len(concat)
    assert [isinstance(op, Identity) for op in block.ops].count(True) == 2
    assert block.droppable == [not isinstance(op, Identity) for op in block.ops]


def test_cell_builds_only_what_reaches_its_output() -> None:
    # node 3 feeds nothing that is concatenated, and nothing reads input 1 once it is gone.
    cell = _cell([[("sep_conv_3x3", 0)], [("sep_conv_3x3", 1)]], concat=[2])
    block = Cell(cell, 8, 8, 4, reduction=True, reduction_prev=False)
    assert len(block.ops) == 1 and isinstance(block.preprocess.pre1, nn.Identity)
    assert block(torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)).shape == (1, 4, 4, 4)


def test_cell_node_without_input_is_refused() -> None:
    cell = CellGenotype(nodes=((), (Edge("skip_connect", 2),)), concat=(3,))
    with pytest.raises(GenotypeError, match="node 2 has no input"):
        Cell(cell, 8, 8, 4, reduction=False, reduction_prev=False)


def per_layer_genotype() -> Genotype:
    """Five cells, each different; the last reads only its first input, so cell 3 is never read."""
    a = _cell([[("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0)], [("dil_conv_3x3", 2)]])
    b = _cell([[("max_pool_3x3", 0), ("sep_conv_5x5", 1)], [("skip_connect", 2), ("avg_pool_3x3", 0)],
               [("dil_conv_5x5", 3)]], concat=[2, 4])
    last = _cell([[("sep_conv_3x3", 0)], [("skip_connect", 2)]])
    return Genotype(layers=(a, b, a, b, last), reductions=(1, 3))


def test_per_layer_network_skips_a_cell_no_one_reads() -> None:
    model = DartsNetwork(per_layer_genotype(), channels=4, num_classes=3)
    assert isinstance(model.cells[3], SkippedCell) and not isinstance(model.cells[2], SkippedCell)
    assert [info["reduction"] for info in model.feature_info] == [1, 2, 4]
    assert model.feature_info[-1]["module"] == "cells.4"
    model.train()
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())  # no dead weights


def test_per_layer_genotype_fixes_the_depth() -> None:
    with pytest.raises(GenotypeError, match="5 cells"):
        DartsNetwork(per_layer_genotype(), channels=4, layers=8)


@pytest.mark.parametrize("kwargs, error", [
    (dict(channels=7), ConfigError), (dict(stem="mobile"), ConfigError), (dict(num_classes=-1), ConfigError),
    (dict(drop_path_rate=1.0), ConfigError), (dict(layers=0), ConfigError),
])
def test_bad_network_options_name_the_problem(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        DartsNetwork(preset_genotype("nd_darts_v2"), **{"channels": 4, "layers": 3, **kwargs})


def test_auxiliary_head_and_drop_path() -> None:
    model = DartsNetwork(preset_genotype("nd_dots_c10"), channels=4, layers=6, num_classes=7, aux_head=True,
                         drop_path_rate=0.3)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    logits, aux = model.forward_train(x)
    assert logits.shape == aux.shape == (2, 7)
    torch.manual_seed(1)
    a = model.forward_features(x)
    torch.manual_seed(2)
    assert not torch.equal(a, model.forward_features(x))  # drop path is random in training
    model.eval()
    assert model.forward_train(x)[1] is None and torch.equal(model(x), model(x))
    assert "aux_head.classifier.weight" in model.state_dict()
    assert count_params(model) < sum(p.numel() for p in model.parameters())  # the head is not counted


def test_imagenet_stems() -> None:
    model = DartsNetwork(preset_genotype("nd_darts_v2"), channels=8, layers=5, stem="imagenet", num_classes=3)
    assert [i["reduction"] for i in model.feature_info] == [4, 8, 16, 32]
    assert model.feature_info[0]["module"] == "stem.stem0"
    model = DartsNetwork(preset_genotype("nd_darts_v2"), channels=8, layers=5, stem="imagenet_stride4")
    assert [i["reduction"] for i in model.feature_info] == [2, 4, 8, 16]
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


# --------------------------------------------------------------------------- without NNI
def test_exported_network_runs_where_nni_cannot_be_imported(tmp_path) -> None:
    genotype = per_layer_genotype()
    path = save_genotype(genotype, tmp_path / "net.json")
    model = DartsNetwork(genotype, channels=4, num_classes=3).eval()
    torch.save(model.state_dict(), tmp_path / "net.pth")
    x = torch.randn(1, 3, 16, 16)
    torch.save(x, tmp_path / "x.pt")
    torch.save(model(x), tmp_path / "y.pt")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["nni"] = None  # any "import nni" now raises ImportError
        try:
            import nni
        except ImportError:
            pass
        else:
            raise SystemExit("nni is importable")
        import timm, torch
        import nni_decouple
        from nni_decouple.models.network import DartsNetwork
        from nni_decouple.models.timm_models import register_genotype
        model = DartsNetwork({str(path)!r}, channels=4, num_classes=3).eval()
        model.load_state_dict(torch.load({str(tmp_path / "net.pth")!r}))
        x, y = torch.load({str(tmp_path / "x.pt")!r}), torch.load({str(tmp_path / "y.pt")!r})
        assert torch.equal(model(x), y)
        name = register_genotype("no_nni", {str(path)!r}, channels=4, num_classes=3)
        feats = timm.create_model(name, features_only=True)(x)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "nni" and sys.modules[m] is not None)
        print(json.dumps({{"models": len(timm.list_models("nd_*")), "features": len(feats), "nni": loaded}}))
    """)
    env = dict(os.environ, NNI_DECOUPLE_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")  # no user exports
    result = subprocess.run([sys.executable, "-c", "import json\n" + script], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"models": len(preset_names()) + 1, "features": 3, "nni": []}


def _small(stem: str = "cifar", **kwargs) -> DartsNetwork:
    return DartsNetwork(preset_genotype("nd_dots_c10"), 4, 5, 10, 3, stem, **kwargs)


def test_reset_classifier_builds_the_head_on_the_models_device_dtype_and_mode() -> None:
    model = _small(aux_head=True).to(device="meta", dtype=torch.float64).eval()
    model.reset_classifier(7)
    heads = [*model.classifier.parameters(), *model.aux_head.classifier.parameters()]
    assert heads and {(p.device.type, p.dtype) for p in heads} == {("meta", torch.float64)}
    assert not any(m.training for m in model.modules())


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_fx_traces_the_network_at_odd_sizes(stem: str) -> None:
    """torchvision's FX feature extraction, as timm's tests call it: no Python branch on tensor shapes
    (FactorizedReduce used to pad odd sizes under an `if` on x.shape)."""
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model = _small(stem).eval()
    _, nodes = get_graph_node_names(model)
    extractor = create_feature_extractor(model, return_nodes=[nodes[-1]])
    x = torch.randn(2, 3, 35, 35)
    with torch.no_grad():
        assert torch.equal(next(iter(extractor(x).values())), model(x))


@pytest.mark.parametrize("name, stem", [("nd_dots_c10", "imagenet"), ("nd_dartopti_resnet50_sparse_c100", "cifar")])
def test_pruning_keeps_what_the_level_reads_and_only_that(name: str, stem: str) -> None:
    """timm's prune contract at every level: forward_features ends at the level (the ImageNet stem used to
    return stem1's output at level 0), and every parameter left gets a gradient (DARTOpti ResNet50 sparse
    C100 used to keep a cell its level-1 output never reads)."""
    import copy

    genotype = preset_genotype(name)
    model = DartsNetwork(genotype, 8, len(genotype.layers) if genotype.per_layer else 5, 10, 3, stem).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        taps = model.forward_intermediates(x, intermediates_only=True)
    for i in range(len(taps)):
        pruned = copy.deepcopy(model)
        assert pruned.prune_intermediate_layers([i], prune_norm=True) == [i]
        with torch.no_grad():
            assert torch.equal(pruned.forward_features(x), taps[i]), i
        pruned.train()
        outputs = [pruned.forward_features(x), *pruned.forward_intermediates(x, [i], intermediates_only=True)]
        sum(f.sum() for f in outputs).backward()
        unused = [n for n, p in pruned.named_parameters() if p.grad is None]
        assert not unused, (i, unused)
