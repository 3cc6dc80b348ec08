"""D-DARTS' Algorithm 1: derive an ``n``-cell network from the ``|C|`` cells of a per-layer search.

The searched network keeps its layout (reductions at 1/3 and 2/3 of the depth); the normal cells
of each of the three stretches between reductions are repeated until the network has ``n`` cells.
:func:`algorithm1` is the index arithmetic exactly as the paper prints it (Heuillet et al.,
Pattern Recognition Letters 2023, Algorithm 1); :func:`deepen` applies it to a per-layer
:class:`~nni_decouple.models.genotype.Genotype`.

Two readings of the printed algorithm, stated here because they decide the output:

- ``for i in [0, n]`` runs over ``i = 0 .. n - 1``: ``n`` is "the desired number of cells".
- The modulo uses the global index ``i``, not the position inside the stretch, so with |C| = 8 and
  n = 14 the middle stretch starts with searched cell 4, not 3 (see the tests for worked sequences).

The public code computes ``i % len(genes) // 3`` in the first stretch, which Python reads as
``(i % |C|) // 3`` and so repeats cells in threes; this module uses ``i mod m`` as printed.
The module imports neither torch nor NNI: training and export use it without a search stack.
"""

from __future__ import annotations

from ..errors import GenotypeError
from .genotype import Genotype

__all__ = ["algorithm1", "deepen"]


def algorithm1(num_searched: int, n: int) -> list[int]:
    """Which searched cell (0 .. ``num_searched - 1``) sits at each of the ``n`` positions.

    For ``n <= |C|`` the algorithm takes cell ``i`` at position ``i``. For ``n > |C|`` positions
    ``n // 3`` and ``2n // 3`` get the searched reduction cells ``|C| // 3`` and ``2|C| // 3``, and
    the three stretches between them cycle through the searched normal cells of the same stretch.
    """
    if n < 1 or num_searched < 1:
        raise GenotypeError(f"Algorithm 1 needs n >= 1 and at least one searched cell, got n={n}, |C|={num_searched}")
    if n <= num_searched:
        return list(range(n))
    m, m2 = num_searched // 3, (2 * num_searched) // 3
    # Each stretch must hold at least one normal cell to repeat (otherwise a modulo by zero).
    stretches = {"first": m, "middle": m2 - 1 - m, "last": num_searched - 1 - m2}
    empty = [name for name, size in stretches.items() if size < 1]
    if empty:
        raise GenotypeError(
            f"Algorithm 1 cannot deepen {num_searched} searched cells: the {', '.join(empty)} stretch between "
            f"the reductions has no normal cell to repeat; search at least 5 cells (D-DARTS searches 8)"
        )
    cells = []
    for i in range(n):
        if i < n // 3:
            c = i % m
        elif i == n // 3:
            c = m
        elif n // 3 < i < (2 * n) // 3:
            c = i % (m2 - 1 - m) + m + 1
        elif i == (2 * n) // 3:
            c = m2
        else:
            c = i % (num_searched - 1 - m2) + m2 + 1
        cells.append(c)
    return cells


def deepen(genotype: Genotype, n: int) -> Genotype:
    """The ``n``-cell per-layer genotype Algorithm 1 derives from a searched per-layer genotype.

    The searched genotype must have its reductions where the algorithm expects them
    (``|C| // 3`` and ``2|C| // 3``); the derived one has them at ``n // 3`` and ``2n // 3``.
    Deriving fewer cells than were searched is refused: the printed algorithm would keep the first
    ``n`` cells and lose the last stretch (and possibly a reduction).
    """
    if not genotype.per_layer:
        raise GenotypeError(
            "Algorithm 1 deepens a per-layer genotype (one cell per layer, e.g. a D-DARTS search); a shared-cell "
            "genotype already builds any depth: pass --layers to the network instead"
        )
    count = len(genotype.layers)
    if n < count:
        raise GenotypeError(f"Algorithm 1 derives deeper networks: asked for {n} cells from {count} searched ones; "
                            f"give n >= {count}")
    if n == count:
        return genotype
    expected = (count // 3, (2 * count) // 3)
    if tuple(sorted(genotype.reductions)) != expected:
        raise GenotypeError(
            f"Algorithm 1 expects the searched reductions at |C|//3 and 2|C|//3 = {list(expected)}, but this genotype "
            f"reduces at {list(genotype.reductions)} (a handcrafted DARTOpti layout?); it cannot be deepened this way"
        )
    sequence = algorithm1(count, n)
    meta = dict(genotype.meta)
    meta.update({"deepened_from": count, "algorithm1": sequence})
    return Genotype(layers=tuple(genotype.layers[c] for c in sequence),
                    reductions=(n // 3, (2 * n) // 3), meta=meta).validate()
