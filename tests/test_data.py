"""Datasets: MNIST-5k, digits, CIFAR and ImageFolder on disk (and files in the wrong format), the bilevel split."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from image_folder import make_image_folder, truncated_png

from nni_decouple.data import bilevel_split, build_datasets, dataset_labels
from nni_decouple.errors import DataError


def test_mnist5k_is_the_bundled_real_data():
    train, test, info = build_datasets("mnist5k")
    assert (len(train), len(test)) == (4000, 1000)
    assert (info.num_classes, info.in_chans, info.image_size) == (10, 1, 28)
    x, y = train[0]
    assert x.shape == (1, 28, 28) and 0 <= int(y) < 10
    assert np.bincount(dataset_labels(test), minlength=10).tolist() == [100] * 10
    # the fixed test split is the same in every process
    assert torch.equal(build_datasets("mnist5k")[1].tensors[1], test.tensors[1])


def test_digits_fallback():
    train, test, info = build_datasets("digits")
    assert len(train) + len(test) == 1797 and info.image_size == 8


def test_train_limit_is_seeded():
    a = build_datasets("digits", train_limit=100, seed=1)[0]
    b = build_datasets("digits", train_limit=100, seed=1)[0]
    c = build_datasets("digits", train_limit=100, seed=2)[0]
    assert len(a) == 100 and a.indices == b.indices and a.indices != c.indices


def test_bilevel_split_is_disjoint_and_seeded():
    train = build_datasets("digits")[0]
    w, a = bilevel_split(train, 0.5, seed=3)
    assert not set(w.indices) & set(a.indices)
    assert len(w) + len(a) == len(train)
    assert bilevel_split(train, 0.5, seed=3)[0].indices == w.indices


def _write_cifar10(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": list(range(4))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)


def test_cifar10_reads_torchvision_format(tmp_path, monkeypatch):
    from torchvision.datasets import cifar

    # our tiny files have other checksums than the real ones (data batches and batches.meta alike)
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: True)
    _write_cifar10(tmp_path)
    train, test, info = build_datasets("cifar10", tmp_path)
    assert (len(train), len(test), info.num_classes) == (20, 4, 10)
    assert train[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize("name, root, message", [
    ("cifar10", None, "needs --data-root"),
    ("cifar10", "/nonexistent/cifar", "does not exist"),
    ("imagenet", "/nonexistent/imagenet", "does not exist"),
    ("svhn", None, "unknown dataset 'svhn'"),
])
def test_bad_dataset(name, root, message):
    with pytest.raises(DataError, match=message):
        build_datasets(name, root)


def test_cifar_root_without_data(tmp_path):
    with pytest.raises(DataError, match="cifar100 not found"):
        build_datasets("cifar100", tmp_path)


def test_imagefolder_without_splits(tmp_path):
    with pytest.raises(DataError, match="no train/ folder"):
        build_datasets("imagefolder", tmp_path)


BAD_IMAGES = [(b"not an image", "not an image format PIL knows"), (truncated_png(), "OSError")]


@pytest.mark.parametrize("content, why", BAD_IMAGES, ids=["text", "truncated"])
def test_imagefolder_refuses_a_class_whose_first_file_is_no_image(tmp_path, content, why):
    root = make_image_folder(tmp_path, "0.jpg", content)  # sorts before 0.png: the first file of class a
    with pytest.raises(DataError, match="is not a readable image") as error:
        build_datasets("imagefolder", root)
    assert str(root / "train" / "a" / "0.jpg") in str(error.value) and why in str(error.value)


@pytest.mark.parametrize("content, why", BAD_IMAGES, ids=["text", "truncated"])
def test_imagefolder_names_a_bad_file_met_mid_epoch(tmp_path, content, why):
    from torch.utils.data import DataLoader

    from nni_decouple.errors import one_line

    root = make_image_folder(tmp_path, "z.jpg", content)  # sorts last: only met when the epoch reaches it
    train, _, info = build_datasets("imagefolder", root)
    assert (len(train), info.num_classes) == (7, 2)
    assert train[0][0].shape == (3, 224, 224)
    with pytest.raises(DataError, match="is not a readable image") as in_process:
        train[3]
    assert str(root / "train" / "a" / "z.jpg") in str(in_process.value)
    # a DataLoader worker re-raises it with its own traceback in the message; the CLI prints the original line
    with pytest.raises(DataError) as in_worker:
        list(DataLoader(train, batch_size=7, num_workers=1))
    assert "Original Traceback" in str(in_worker.value)
    assert one_line(in_worker.value) == str(in_process.value)


def test_data_root_that_is_a_file(tmp_path):
    (tmp_path / "cifar").write_text("")
    with pytest.raises(DataError, match="is a file, not a folder"):
        build_datasets("cifar10", tmp_path / "cifar")


def test_cifar_root_pointing_inside_its_folder(tmp_path):
    inner = tmp_path / "cifar-10-batches-py"
    inner.mkdir()
    with pytest.raises(DataError, match=f"point --data-root at its parent '{tmp_path}'"):
        build_datasets("cifar10", inner)
