"""The composer: every valid composition searches and derives a buildable genotype, every invalid one
fails naming both axes, and the presets are the method classes."""

from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from nni_decouple.cli import main
from nni_decouple.errors import ConfigError
from nni_decouple.models.genotype import Genotype
from nni_decouple.models.network import DartsNetwork
from nni_decouple.runner.evaluator import SearchModule
from nni_decouple.search.schedules import SCHEDULES
from nni_decouple.spaces import CellSpace
from nni_decouple.strategies.base import DecoupledStrategy
from nni_decouple.strategies.compose import (
    AXES,
    PRESETS,
    RULES,
    SPACES,
    Composition,
    all_compositions,
    choices,
    compose,
    conflicts,
    incompatible_pairs,
    valid_compositions,
)
from nni_decouple.strategies.ddarts import DDARTS
from nni_decouple.strategies.dnas import DNAS
from nni_decouple.strategies.dots import DOTS
from nni_decouple.strategies.edarts import EDARTS
from nni_decouple.strategies.stretchable import StretchableCells

OPS = "none,skip_connect,avg_pool_3x3,sep_conv_3x3"
CLASSES = 3
#: DOTS' four stages in two one-batch epochs: op search, then topology search.
STAGED = {"stage_epochs": (0, 1, 0, 1)}

logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def _data(n: int = 4, seed: int = 1) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, CLASSES, (n,), generator=g))


def search(strategy: DecoupledStrategy, composition: Composition, *, ops: str = OPS, nodes: int = 2,
           images: int = 4, seed: int = 0) -> dict[str, Any]:
    """The lightest real search: mutate a 3-layer, 4-channel space, fit one batch per epoch (two epochs
    for the staged schedule), derive. Returns the module, arch parameters before/after, loss, genotype."""
    torch.manual_seed(seed)
    space = CellSpace(ops=ops, channels=4, layers=3, nodes=nodes, num_classes=CLASSES, in_chans=1,
                      sharing=SPACES[composition.space].sharing)  # type: ignore[arg-type]
    supernet = strategy.mutate_model(space)
    training = SearchModule(learning_rate=0.05)
    training.set_model(supernet)
    module = strategy.configure_oneshot_module(training)
    module.log_probs = lambda probs: None  # logging every op probability is a quarter of a one-step search
    before = [p.detach().clone() for p in module.arch_parameters()]
    loaders = strategy.train_dataloader(lambda: DataLoader(_data(images, 1), batch_size=4),
                                        lambda: DataLoader(_data(images, 2), batch_size=4))
    losses: list[float] = []

    class Loss(pl.Callback):
        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))

    torch.manual_seed(seed + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = pl.Trainer(max_epochs=2 if composition.schedule == "staged" else 1, limit_train_batches=1,
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu", callbacks=[Loss()],
                             num_sanity_val_steps=0)
        trainer.fit(module, train_dataloaders=loaders)
        with torch.no_grad():
            genotype = Genotype.from_arch(module.export())
    return {"module": module, "before": before, "after": [p.detach().clone() for p in module.arch_parameters()],
            "losses": losses, "genotype": genotype}


# ----------------------------------------------------------------------------- the matrix
VALID = valid_compositions()


def test_the_matrix_covers_every_choice_of_every_axis() -> None:
    for axis in AXES:
        assert {getattr(c, axis) for c in VALID} == set(choices(axis)), axis
    assert "survivors" not in choices("weights")  # the staged schedule's wrapper, not a choice
    assert {"bilevel", "milenas", "staged", "sparse", "percell"} <= set(SCHEDULES)


@pytest.mark.parametrize("composition", VALID, ids=lambda c: "-".join(c.axes().values()))
def test_every_valid_composition_searches_and_derives_a_network(composition: Composition) -> None:
    options = {"schedule_options": STAGED} if composition.schedule == "staged" else {}
    run = search(compose(**composition.axes(), **options), composition)
    assert run["losses"] and all(torch.isfinite(torch.tensor(run["losses"])))
    assert any(not torch.equal(a, b) for a, b in zip(run["before"], run["after"], strict=True)), "no arch step"
    genotype = run["genotype"].validate()
    assert len(genotype.cells()) == (2 if composition.space == "cell" else 3)  # shared by type, or per layer
    net = DartsNetwork(genotype, channels=4, layers=3, num_classes=CLASSES, in_chans=1).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, 8, 8)).shape == (2, CLASSES)


def test_every_invalid_composition_raises_naming_both_axes() -> None:
    invalid = [c for c in all_compositions() if conflicts(c)]
    assert len(invalid) + len(VALID) == len(list(all_compositions())) and invalid
    for composition in invalid:
        with pytest.raises(ConfigError) as error:
            compose(**composition.axes())
        message = str(error.value)
        for conflict in conflicts(composition):
            axes = composition.axes()
            rule = conflict.rule
            assert f"--{rule.axis} {axes[rule.axis]}" in message and f"--{rule.other} {axes[rule.other]}" in message
            assert rule.fix() in message


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.axis}-{r.other}")
def test_each_rule_fires_on_an_example_and_its_fix_is_valid(rule: Any) -> None:
    valid = next(c for c in VALID if getattr(c, rule.axis) in rule.values)
    bad = next(v for v in choices(rule.other) if v not in rule.allowed)
    broken = Composition(**{**valid.axes(), rule.other: bad})
    assert rule in [c.rule for c in conflicts(broken)]
    assert ((rule.axis, getattr(valid, rule.axis)), (rule.other, bad)) in incompatible_pairs()


def test_the_issues_examples_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"--weights factorised does not combine with --space cell.*--space global"):
        compose(space="cell", weights="factorised")
    with pytest.raises(ConfigError, match=r"--schedule percell does not combine with --space global"):
        compose(space="global", weights="sigmoid", schedule="percell", derive="sparse")
    with pytest.raises(ConfigError, match=r"--topology output_any does not combine with --derive top2"):
        compose(topology="output_any")
    with pytest.raises(ConfigError, match=r"unknown --weights 'alpha'"):
        compose(weights="alpha")


def test_the_space_must_have_the_compositions_sharing() -> None:
    strategy = compose(preset="dnas")
    with pytest.raises(ConfigError, match="sharing='layer'"):
        strategy.mutate_model(CellSpace(ops=OPS, channels=4, layers=3, nodes=2, in_chans=1, sharing="type"))


def test_compositions_from_the_issue_work() -> None:
    """Stretchable topology in a global space with DNAS' factorised weights, DOTS' topology after a
    gumbel op search, eDARTS' sparse schedule under DOTS' topology."""
    a = compose(space="global", weights="factorised", topology="output_any", schedule="milenas", derive="stretchable")
    assert type(a.make_topology.__self__).__name__ == "ComposedStrategy" and a.schedule_cls is SCHEDULES["milenas"]
    b = compose(preset="dots", weights="gumbel", weights_options={"tau": 5.0}, schedule_options=STAGED)
    assert b.weights == "survivors" and b.weights_options["search"] == "gumbel"
    assert b.weights_options["search_options"] == {"tau": 5.0} and b.weights_options["keep"] == 1
    c = compose(preset="dots", schedule="sparse")
    assert c.weights == "grouped" and c.lazy_val and c.schedule_cls is SCHEDULES["sparse"]
    assert c.schedule_options == {}  # the staged options of the preset are dropped with its schedule
    with pytest.raises(ConfigError, match="lazy_val"):
        compose(lazy_val=True)


# ----------------------------------------------------------------------------- presets = method classes
def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert len(a["after"]) == len(b["after"]) and a["after"]
    for x, y in zip(a["after"], b["after"], strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert a["losses"] == b["losses"] and a["losses"]
    assert a["genotype"].to_dict() == b["genotype"].to_dict()


PRESET_CLASSES = {
    "darts": (lambda **kw: DecoupledStrategy(**kw), {}),
    "dots": (DOTS, {"stage_epochs": STAGED["stage_epochs"]}),
    "stretchable": (StretchableCells, {}),
    "dnas": (DNAS, {}),
    "ddarts": (DDARTS, {}),
    "edarts": (EDARTS, {}),
}


def test_every_preset_is_compared_with_its_class() -> None:
    assert set(PRESET_CLASSES) == set(PRESETS)


@pytest.mark.parametrize("name", list(PRESET_CLASSES))
def test_preset_gives_the_method_classes_parameters_loss_and_genotype(name: str) -> None:
    preset = PRESETS[name]
    cls, options = PRESET_CLASSES[name]
    composed_options = {"schedule_options": STAGED} if name == "dots" else {}
    ops = preset.space["ops"]
    images = 40 if name == "edarts" else 4  # eDARTS searches on a tenth: 4 images
    composed = search(compose(preset=name, **composed_options), preset.composition, ops=ops, images=images)
    method = search(cls(**options), preset.composition, ops=ops, images=images)
    _same(composed, method)
    assert any(not torch.equal(a, b) for a, b in zip(composed["before"], composed["after"], strict=True))


# ----------------------------------------------------------------------------- CLI
def test_cli_help_lists_every_axis_choice(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["search", "compose", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for axis in AXES:  # every choice, in the order the light declarations give them
        listed = re.search(rf"--{axis} {{([^}}]*)}}", text)
        assert listed is not None and set(listed.group(1).split(",")) == set(choices(axis)), axis
    for name in PRESETS:
        assert name in text


def test_cli_searches_a_composition_and_records_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["search", "compose", "--preset", "stretchable", "--topology", "output_pairs", "--space", "global",
                 "--epochs", "1", "--train-limit", "16", "--batch-size", "8", "--layers", "3", "--channels", "4",
                 "--nodes", "2", "--set", "topology.reg_lambda=0", "--out", str(out), "--force", "--no-progress"])
    assert code == 0
    genotype = json.loads((out / "genotype.json").read_text())
    assert genotype["meta"]["composition"] == {"space": "global", "weights": "softmax", "topology": "output_pairs",
                                               "schedule": "milenas", "derive": "stretchable"}
    assert len(genotype["layers"]) == 3
    assert "none" not in json.dumps(genotype["layers"])  # the preset's ops: darts_no_none


def test_cli_refuses_an_invalid_composition_naming_both_axes(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["search", "compose", "--weights", "factorised", "--out", "/tmp/never-composed"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--weights factorised" in err and "--space cell" in err and "use --space global" in err
    assert main(["search", "compose", "--set", "colour.red=1", "--out", "/tmp/never-composed"]) == 2
