"""eDARTS' search subset: requested size, seeded, optionally class-balanced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from nni_decouple.data import build_datasets, dataset_labels, subset
from nni_decouple.errors import DataError


@pytest.fixture(scope="module")
def mnist_train() -> TensorDataset:
    return build_datasets("mnist5k")[0]


@pytest.mark.parametrize("fraction, size", [(0.1, 400), (0.25, 1000), (1.0, 4000), (0.0001, 1)])
def test_size(mnist_train: TensorDataset, fraction: float, size: int) -> None:
    assert len(subset(mnist_train, fraction, seed=0)) == size
    assert len(subset(mnist_train, fraction, seed=0, balanced=True)) == size


def test_seeded(mnist_train: TensorDataset) -> None:
    a, b, c = (subset(mnist_train, 0.1, seed=s).indices for s in (3, 3, 4))
    assert a == b and a != c
    assert len(set(a)) == len(a) and a == sorted(a)


def test_balanced(mnist_train: TensorDataset) -> None:
    labels = dataset_labels(subset(mnist_train, 0.0625, seed=1, balanced=True))  # 250 images, 10 classes
    assert np.bincount(labels, minlength=10).tolist() == [25] * 10


def test_balanced_spreads_the_remainder_and_short_classes() -> None:
    # 3 classes with 2, 50, 50 images; 31 requested: class 0 runs short, the others share the rest.
    y = torch.tensor([0] * 2 + [1] * 50 + [2] * 50)
    data = TensorDataset(torch.zeros(len(y), 1), y)
    counts = np.bincount(dataset_labels(subset(data, 31 / 102, seed=0, balanced=True)), minlength=3)
    assert counts[0] == 2 and sorted(counts[1:].tolist()) == [14, 15]


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_bad_fraction(mnist_train: TensorDataset, fraction: float) -> None:
    with pytest.raises(DataError, match="fraction"):
        subset(mnist_train, fraction)
