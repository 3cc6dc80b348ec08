"""The CLI's light method declarations (:mod:`nni_decouple.strategies.methods`) name what the registries hold."""

from __future__ import annotations

from nni_decouple.data import DATASETS
from nni_decouple.models.handcrafted import HANDCRAFTED
from nni_decouple.options import DATASET_NAMES, STEMS
from nni_decouple.search.schedules.percell import ABLATIONS, DEACTIVATIONS, NORMALISERS
from nni_decouple.search.schedules.staged import ANNEALS, MIN_EPOCH_ANNEAL, PUBLISHED_STAGE_EPOCHS
from nni_decouple.search.topology.path import PATHS
from nni_decouple.search.weights.prior import ATTENTION_PRESETS
from nni_decouple.strategies import compose, stretchable
from nni_decouple.strategies.methods import compose as compose_cli
from nni_decouple.strategies.methods import ddarts as ddarts_cli
from nni_decouple.strategies.methods import dots as dots_cli
from nni_decouple.strategies.methods import edarts as edarts_cli


def test_names_match_the_registries() -> None:
    import nni_decouple.models.blocks as blocks

    assert DATASET_NAMES == tuple(sorted(DATASETS))
    assert STEMS == blocks.STEMS
    assert dots_cli.PUBLISHED_STAGE_EPOCHS == PUBLISHED_STAGE_EPOCHS
    assert (dots_cli.ANNEALS, dots_cli.MIN_EPOCH_ANNEAL) == (tuple(ANNEALS), MIN_EPOCH_ANNEAL)
    assert edarts_cli.PATH_NAMES == tuple(PATHS) and edarts_cli.ATTENTION_NAMES == tuple(ATTENTION_PRESETS)
    assert (ddarts_cli.ABLATIONS, ddarts_cli.DEACTIVATIONS) == (tuple(ABLATIONS), tuple(DEACTIVATIONS))
    assert ddarts_cli.NORMALISERS == tuple(NORMALISERS)
    assert ddarts_cli.STARTS == ("scratch", *HANDCRAFTED)
    assert tuple(stretchable.OPTIMIZERS) == ("darts", "milenas")


def test_compose_choices_match_the_registries() -> None:
    for axis in compose.AXES:
        assert set(compose_cli.AXIS_CHOICES[axis]) == set(compose.choices(axis)), axis
    assert {name: tuple(p.composition.axes().values()) for name, p in compose.PRESETS.items()} == \
        compose_cli.PRESET_AXES
    assert compose_cli.EDGE_NAMES == tuple(compose.EDGES)
