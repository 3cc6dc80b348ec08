"""timm's model contract for every model the package registers, plus registration of user genotypes.

The checks follow timm's own ``tests/test_models.py`` (forward, backward with every parameter getting a
gradient, default cfg sanity, ``forward_head(pre_logits=True)``, ``reset_classifier``, ``features_only``
channels and reductions against ``feature_info``, ``forward_intermediates``, TorchScript). To stay fast
they run at a small width (and depth, where the genotype allows) and at small inputs; the pretrained
cfg is checked at the model's own input size.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import timm
import torch

from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import CellGenotype, Genotype, save_genotype
from nni_decouple.models.network import backbones_dir, preset_genotype, preset_info, preset_names
from nni_decouple.models.timm_models import register_exports, register_genotype, registered_exports, user_dir

REPO = Path(__file__).resolve().parents[2]


def _user_genotype() -> Genotype:
    """A per-layer genotype with 3-input nodes and a partial concat, registered like a user export."""
    a = CellGenotype.from_edges([[("sep_conv_3x3", 0), ("skip_connect", 1), ("avg_pool_3x3", 0)],
                                 [("dil_conv_3x3", 2), ("conv_3x1_1x3", 1)]])
    r = CellGenotype.from_edges([[("max_pool_3x3", 0), ("bottleneck_1x3x1", 1)], [("skip_connect", 2)],
                                 [("sep_conv_5x5", 3), ("skip_connect", 0)]], concat=[2, 4])
    return Genotype(layers=(a, r, a, r, a), reductions=(1, 3))


USER_MODEL = register_genotype("test_user_genotype", _user_genotype(), channels=8, num_classes=10, replace=True)
MODELS = preset_names() + [USER_MODEL]


def _small(name: str, **kwargs) -> torch.nn.Module:
    """The model at a small width; shared-cell presets also at 5 cells (reductions at 1 and 3)."""
    args = {"channels": 4}
    genotype = preset_genotype(name) if name in preset_names() else _user_genotype()
    if not genotype.per_layer:
        args["layers"] = 5
    return timm.create_model(name, **{**args, **kwargs})


def _input(model: torch.nn.Module, batch: int = 2) -> torch.Tensor:
    c, h, _ = model.pretrained_cfg["input_size"]
    size = 32 if h <= 32 else 64  # ImageNet-stem models at 64x64
    return torch.randn(batch, c, size, size)


def test_every_model_is_registered_and_prefixed() -> None:
    names = set(timm.list_models("nd_*"))
    assert set(MODELS) <= names
    assert all(n.startswith("nd_") for n in MODELS)
    assert not set(timm.list_models(exclude_filters=["nd_*"])) & set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name: str) -> None:
    model = _small(name, num_classes=42)
    model.train()
    out = model(_input(model))
    out.mean().backward()
    assert out.shape == (2, 42) and not torch.isnan(out).any()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    model.eval()
    with torch.no_grad():
        assert model(_input(model, 1)).shape == (1, 42)


@pytest.mark.parametrize("name", MODELS)
def test_default_cfg_head_and_classifier(name: str) -> None:
    model = _small(name).eval()
    cfg = model.pretrained_cfg
    assert model.num_classes == cfg["num_classes"] > 0 and model.num_features > 0
    assert model.head_hidden_size == model.num_features
    state = model.state_dict()
    assert f"{cfg['classifier']}.weight" in state and f"{cfg['first_conv']}.weight" in state
    assert model.get_classifier() is model.classifier
    x = torch.randn(1, *cfg["input_size"])  # the model's own input size: the pool size must match
    with torch.no_grad():
        feats = model.forward_features(x)
        assert tuple(feats.shape[-2:]) == tuple(cfg["pool_size"]) and feats.shape[1] == model.num_features
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (1, model.head_hidden_size)
        model.reset_classifier(0)
        assert model.num_classes == 0 and model(x).shape == pre.shape
        model.reset_classifier(5)
        assert model(x).shape == (1, 5)
        model.reset_classifier(0, "")
        assert tuple(model(x).shape[-2:]) == tuple(cfg["pool_size"])
    model = _small(name, num_classes=0, global_pool="").eval()
    with torch.no_grad():
        assert model(x).dim() == 4


@pytest.mark.parametrize("name", MODELS)
def test_features_only_and_intermediates(name: str) -> None:
    model = _small(name).eval()
    info = model.feature_info
    reductions = [i["reduction"] for i in info]
    assert reductions == sorted(set(reductions)) and len(info) >= 3  # one level per stride
    x = _input(model, 1)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        assert torch.allclose(final, model.forward_features(x))
        for level, feat in zip(info, inter, strict=True):
            assert feat.shape[1] == level["num_chs"]
            assert feat.shape[-1] <= math.ceil(x.shape[-1] / level["reduction"]) + 1
        assert len(model.forward_intermediates(x, indices=2, intermediates_only=True)) == 2

        features = _small(name, features_only=True).eval()
        assert features.feature_info.channels() == [i["num_chs"] for i in info]
        assert features.feature_info.reduction() == reductions
        outs = features(x)
        assert [o.shape[1] for o in outs] == features.feature_info.channels()
        assert [x.shape[-1] // o.shape[-1] for o in outs] == reductions

        subset = _small(name, features_only=True, out_indices=(1, -1)).eval()
        outs = subset(x)
        assert [o.shape[1] for o in outs] == [info[1]["num_chs"], info[-1]["num_chs"]]


@pytest.mark.parametrize("name", MODELS)
def test_torchscript(name: str) -> None:
    model = _small(name, num_classes=3).eval()
    x = _input(model, 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
        with timm.set_scriptable(True):
            scripted = torch.jit.script(model)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5)


def test_pretrained_file_loads_through_the_cfg_overlay(tmp_path: Path) -> None:
    model = _small("nd_dots_imagenet", num_classes=7).eval()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pth")
    loaded = _small("nd_dots_imagenet", num_classes=7, pretrained=True,
                    pretrained_cfg_overlay=dict(file=str(tmp_path / "w.pth"), num_classes=7)).eval()
    x = _input(model, 1)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # A Lightning checkpoint of the training module ("model." prefix, auxiliary head) loads too.
    trained = _small("nd_dots_imagenet", num_classes=7, aux_head=True).eval()
    torch.save({"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}}, tmp_path / "l.ckpt")
    loaded = _small("nd_dots_imagenet", num_classes=7, pretrained=True,
                    pretrained_cfg_overlay=dict(file=str(tmp_path / "l.ckpt"), num_classes=7)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))


# --------------------------------------------------------------------------- registration
def test_register_genotype_refuses_bad_names_and_presets() -> None:
    genotype = _user_genotype()
    with pytest.raises(ConfigError, match="not usable"):
        register_genotype("Bad-Name", genotype)
    with pytest.raises(ConfigError, match="preset"):
        register_genotype("darts_v2", genotype)
    with pytest.raises(ConfigError, match="already registered"):
        register_genotype(USER_MODEL, genotype)


def test_register_genotype_with_weights_file(tmp_path: Path) -> None:
    genotype = preset_genotype("nd_darts_v2")
    source = timm.create_model("nd_darts_v2", channels=4, layers=5, num_classes=3, in_chans=1).eval()
    torch.save(source.state_dict(), tmp_path / "w.pth")
    name = register_genotype("test_with_weights", genotype, channels=4, layers=5, num_classes=3, in_chans=1,
                             input_size=28, file=tmp_path / "w.pth", replace=True)
    model = timm.create_model(name, pretrained=True).eval()
    assert model.pretrained_cfg["input_size"] == (1, 28, 28) and model.in_chans == 1
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
    assert name in timm.list_models(pretrained=True)


def test_user_exports_register_from_their_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNI_DECOUPLE_HOME", str(tmp_path))
    assert user_dir() == tmp_path / "backbones"
    genotype = _user_genotype()
    meta = {"models": {"nd_test_from_disk": {"stem": "cifar", "channels": 4, "layers": 5, "num_classes": 6}}}
    save_genotype(Genotype(layers=genotype.layers, reductions=genotype.reductions, meta=meta),
                  user_dir() / "test_from_disk.json")
    (user_dir() / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.warns(UserWarning, match="broken.json"):
        names = register_exports()
    assert names == ["nd_test_from_disk"] and registered_exports()["nd_test_from_disk"].name == "test_from_disk.json"
    assert timm.create_model("nd_test_from_disk").num_classes == 6


# --------------------------------------------------------------------------- the shipped backbones
def test_every_backbone_file_has_a_card_and_registered_models() -> None:
    directory = backbones_dir()
    jsons = sorted(p.stem for p in directory.glob("*.json"))
    assert sorted(p.stem for p in directory.glob("*.md") if p.stem != "README") == jsons
    assert sorted({preset_info(n)["backbone"] for n in preset_names()}) == jsons
    for name in preset_names():
        network_source = (REPO / "nni_decouple" / "models" / "network.py").read_text()
        assert name in network_source, f"{name} has no @register_model function"
        card = (directory / f"{preset_info(name)['backbone']}.md").read_text(encoding="utf-8")
        assert f"`{name}`" in card and "FlopCounterMode" in card


def test_pretrained_cfg_normalises_as_each_dataset_was_trained() -> None:
    """Every dataset the project trains on has the statistics its reader normalises with; MNIST-5k and
    digits use their own (an MNIST export's cfg used to say mean 0, std 1)."""
    from nni_decouple.data import _CIFAR_STATS, _IMAGENET_STATS, DATASETS, build_datasets
    from nni_decouple.models.timm_models import DATASET_STATS, dataset_stats

    assert set(DATASETS) <= set(DATASET_STATS)
    for name in ("mnist5k", "digits"):  # the bundled data: compare with what the reader applies
        info = build_datasets(name)[2]
        assert DATASET_STATS[name] == (pytest.approx(info.mean, abs=1e-4), pytest.approx(info.std, abs=1e-4))
    assert DATASET_STATS["cifar10"] == _CIFAR_STATS["cifar10"] and DATASET_STATS["cifar100"] == _CIFAR_STATS["cifar100"]
    assert DATASET_STATS["imagenet"] == DATASET_STATS["imagefolder"] == _IMAGENET_STATS
    name = register_genotype("test_mnist_stats", preset_genotype("nd_dots_c10"), channels=4, layers=5, in_chans=1,
                             input_size=28, dataset="mnist5k", replace=True)
    cfg = timm.create_model(name).pretrained_cfg
    assert (cfg["mean"], cfg["std"], cfg["input_size"]) == ((0.1313,), (0.3086,), (1, 28, 28))
    assert dataset_stats("mnist5k", 3) == ((0.1313,) * 3, (0.3086,) * 3)
