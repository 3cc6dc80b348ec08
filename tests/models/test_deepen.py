"""Algorithm 1 of D-DARTS: sequences worked out by hand from the paper's pseudo-code."""

from __future__ import annotations

import pytest

from nni_decouple.errors import GenotypeError
from nni_decouple.models.deepen import algorithm1, deepen
from nni_decouple.models.genotype import CellGenotype, Genotype

# |C| = 8 searched cells: m = 8 // 3 = 2 and m2 = 16 // 3 = 5 (the searched reductions).
#
# n = 14: n // 3 = 4, 2n // 3 = 9.
#   i = 0..3  (i < 4):      c = i mod m = i mod 2                     -> 0 1 0 1
#   i = 4     (i = n//3):   c = m                                     -> 2
#   i = 5..8  (4 < i < 9):  c = i mod (m2 - 1 - m) + m + 1 = i mod 2 + 3 -> 4 3 4 3
#   i = 9     (i = 2n//3):  c = m2                                    -> 5
#   i = 10..13 (else):      c = i mod (|C| - 1 - m2) + m2 + 1 = i mod 2 + 6 -> 6 7 6 7
N14 = [0, 1, 0, 1, 2, 4, 3, 4, 3, 5, 6, 7, 6, 7]
# n = 20: n // 3 = 6, 2n // 3 = 13.
#   i = 0..5: i mod 2 -> 0 1 0 1 0 1; i = 6: 2; i = 7..12: i mod 2 + 3 -> 4 3 4 3 4 3;
#   i = 13: 5; i = 14..19: i mod 2 + 6 -> 6 7 6 7 6 7
N20 = [0, 1, 0, 1, 0, 1, 2, 4, 3, 4, 3, 4, 3, 5, 6, 7, 6, 7, 6, 7]


def test_hand_worked_sequences() -> None:
    assert algorithm1(8, 14) == N14
    assert algorithm1(8, 20) == N20


def test_not_the_public_codes_grouping_in_threes() -> None:
    # The public code's "i % len // 3" is (i % 8) // 3: 0, 0, 0, 1 in the first stretch.
    assert algorithm1(8, 14)[:4] != [(i % 8) // 3 for i in range(4)]


def test_n_up_to_the_searched_cells_is_the_identity() -> None:
    assert algorithm1(8, 8) == list(range(8))
    assert algorithm1(8, 5) == list(range(5))


def test_stretches_without_normal_cells_are_refused() -> None:
    with pytest.raises(GenotypeError, match="stretch"):
        algorithm1(4, 10)  # m = 1, m2 = 2: no normal cell between the reductions


def searched(count: int = 8) -> Genotype:
    # Cell i is recognisable by its op count: node 2 has i + 1 edges alternating between the inputs.
    cells = tuple(CellGenotype.from_edges([[("sep_conv_3x3", k % 2) for k in range(i + 1)]]) for i in range(count))
    return Genotype(layers=cells, reductions=(count // 3, 2 * count // 3))


@pytest.mark.parametrize(("n", "expected"), [(14, N14), (20, N20)])
def test_deepen_places_the_searched_reductions_at_a_third_and_two_thirds(n: int, expected: list[int]) -> None:
    genotype = searched()
    deep = deepen(genotype, n)
    assert len(deep.layers) == n
    assert deep.reductions == (n // 3, 2 * n // 3)
    assert [len(cell.nodes[0]) - 1 for cell in deep.layers] == expected
    for r in deep.reductions:  # the reduction positions hold the searched reduction cells 2 and 5
        assert deep.layers[r] in (genotype.layers[2], genotype.layers[5])
    assert deep.meta["algorithm1"] == expected


def test_deepen_refuses_other_layouts_and_shallower_networks() -> None:
    with pytest.raises(GenotypeError, match="reduces at"):
        deepen(Genotype(layers=searched().layers, reductions=(1, 2, 3)), 14)
    with pytest.raises(GenotypeError, match="deeper"):
        deepen(searched(), 6)
    assert deepen(searched(), 8) == searched()
