"""Tiny COCO and Cityscapes datasets in their real on-disk layouts (configs are made test-sized by
``nni-decouple transfer --smoke``, :func:`nni_decouple.commands.transfer.smoke_config`).

The datasets are drawn, not downloaded: a few images with rectangles of known classes, and the
annotation files the mm loaders read, written the way the real ones are (COCO's instances json;
Cityscapes' ``leftImg8bit/`` and ``gtFine/`` folders with labelIds, instanceIds and labelTrainIds
maps, and mmdet's ``instancesonly_filtered_gtFine_*.json`` derived from the instanceIds as mmdet's
cityscapes converter does).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils


class Label(NamedTuple):
    """A row of Cityscapes' label table (cityscapesscripts.helpers.labels)."""

    id: int
    train_id: int
    instances: bool
    color: tuple[int, int, int]


#: The classes the tiny scenes use, plus every instance class (the instance json lists them all).
CITYSCAPES_LABELS: dict[str, Label] = {
    "road": Label(7, 0, False, (128, 64, 128)),
    "building": Label(11, 2, False, (70, 70, 70)),
    "sky": Label(23, 10, False, (70, 130, 180)),
    "person": Label(24, 11, True, (220, 20, 60)),
    "rider": Label(25, 12, True, (255, 0, 0)),
    "car": Label(26, 13, True, (0, 0, 142)),
    "truck": Label(27, 14, True, (0, 0, 70)),
    "bus": Label(28, 15, True, (0, 60, 100)),
    "train": Label(31, 16, True, (0, 80, 100)),
    "motorcycle": Label(32, 17, True, (0, 0, 230)),
    "bicycle": Label(33, 18, True, (119, 11, 32)),
}

COCO_SIZE = (96, 72)  # width, height
CITYSCAPES_SIZE = (128, 64)  # Cityscapes' 2:1 aspect at 1/16 of 2048x1024


def _image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    return rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)


def _boxes(rng: np.random.Generator, width: int, height: int, count: int) -> list[tuple[int, int, int, int]]:
    """Non-empty boxes (x0, y0, x1, y1) at least 16 px wide and high."""
    boxes = []
    for _ in range(count):
        w = int(rng.integers(16, width // 2))
        h = int(rng.integers(16, height // 2))
        x0 = int(rng.integers(0, width - w))
        y0 = int(rng.integers(0, height - h))
        boxes.append((x0, y0, x0 + w, y0 + h))
    return boxes


def make_coco(root: Path, classes: Iterable[str], images: dict[str, int] | None = None, seed: int = 0) -> Path:
    """COCO 2017 layout: ``train2017/``, ``val2017/``, ``annotations/instances_{split}2017.json``."""
    rng = np.random.default_rng(seed)
    classes = list(classes)
    categories = [{"id": i + 1, "name": name, "supercategory": "thing"} for i, name in enumerate(classes)]
    width, height = COCO_SIZE
    ann_id = 1
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count in (images or {"train": 4, "val": 2}).items():
        folder = root / f"{split}2017"
        folder.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"info": {"description": "tiny COCO for tests"}, "licenses": [], "images": [],
                                "annotations": [], "categories": categories}
        for i in range(count):
            image_id = 1000 * (1 if split == "train" else 2) + i
            name = f"{image_id:012d}.jpg"
            img = _image(rng, width, height)
            for x0, y0, x1, y1 in _boxes(rng, width, height, 2):
                category = int(rng.integers(0, min(3, len(classes))))
                img[y0:y1, x0:x1] = (60 * (category + 1), 255 - 60 * category, 40)
                data["annotations"].append({
                    "id": ann_id, "image_id": image_id, "category_id": category + 1, "iscrowd": 0,
                    "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float((x1 - x0) * (y1 - y0)),
                    "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                })
                ann_id += 1
            cv2.imwrite(str(folder / name), img)
            data["images"].append({"id": image_id, "file_name": name, "width": width, "height": height})
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return root


def make_cityscapes(root: Path, images: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Cityscapes layout with the files mmseg and mmdet read, plus mmdet's instance json."""
    rng = np.random.default_rng(seed)
    id2train = np.full(256, 255, dtype=np.uint8)
    for label in CITYSCAPES_LABELS.values():
        id2train[label.id] = label.train_id
    categories = [{"id": lb.id, "name": name} for name, lb in CITYSCAPES_LABELS.items() if lb.instances]
    name2label = CITYSCAPES_LABELS
    width, height = CITYSCAPES_SIZE
    city = "tinytown"
    ann_id = 1
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count in (images or {"train": 2, "val": 2}).items():
        img_dir = root / "leftImg8bit" / split / city
        gt_dir = root / "gtFine" / split / city
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"images": [], "annotations": [], "categories": categories}
        for i in range(count):
            stem = f"{city}_{i:06d}_000019"
            label_ids = np.empty((height, width), dtype=np.uint8)
            label_ids[: height // 3] = name2label["sky"].id
            label_ids[height // 3: 2 * height // 3] = name2label["building"].id
            label_ids[2 * height // 3:] = name2label["road"].id
            instance_ids = label_ids.astype(np.uint16)
            img = _image(rng, width, height)
            for k, box in enumerate(_boxes(rng, width, height, 2)):
                label = name2label[("car", "person")[k % 2]]  # Cityscapes' instance classes
                x0, y0, x1, y1 = box
                label_ids[y0:y1, x0:x1] = label.id
                instance_ids[y0:y1, x0:x1] = label.id * 1000 + k
                img[y0:y1, x0:x1] = label.color[::-1]
            image_id = len(data["images"]) + 1
            for value in np.unique(instance_ids):
                if value < 1000:  # pixels of a class without an instance id are not instances
                    continue
                mask = np.asfortranarray((instance_ids == value).astype(np.uint8))
                rle = mask_utils.encode(mask)
                rle["counts"] = rle["counts"].decode()
                x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
                data["annotations"].append({
                    "id": ann_id, "image_id": image_id, "category_id": int(value // 1000), "iscrowd": 0,
                    "segmentation": rle, "area": float(mask_utils.area(rle)), "bbox": [x, y, w, h],
                })
                ann_id += 1
            cv2.imwrite(str(img_dir / f"{stem}_leftImg8bit.png"), img)
            cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelIds.png"), label_ids)
            cv2.imwrite(str(gt_dir / f"{stem}_gtFine_instanceIds.png"), instance_ids)
            cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelTrainIds.png"), id2train[label_ids])
            data["images"].append({
                "id": image_id, "file_name": f"{city}/{stem}_leftImg8bit.png", "height": height, "width": width,
                "segm_file": f"{city}/{stem}_gtFine_instanceIds.png",
            })
        (root / "annotations" / f"instancesonly_filtered_gtFine_{split}.json").write_text(json.dumps(data))
    return root


# ----------------------------------------------------------------------------- shared, built once
def make_image_folder(root: Path, classes: int = 2, per_class: int = 2, size: int = 48, seed: int = 0) -> Path:
    """ImageNet's layout (``train/<class>/*.jpg``, ``val/<class>/*.jpg``), for ``nni-decouple train``."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = _image(rng, size, size)
                img[:, :, c % 3] = 255  # a class is told apart by one saturated channel
                cv2.imwrite(str(folder / f"n{c:08d}_{i}.jpg"), img)
    return root


def session_dir(tmp_path_factory: Any, name: str, build: Any) -> Path:
    """``build(path)`` once per test session, shared by every test module that asks for ``name``."""
    path = tmp_path_factory.getbasetemp() / "mm-shared" / name
    done = path.parent / f"{name}.done"
    if not done.exists():
        build(path)
        done.touch()
    return path


#: A tiny ImageNet-style DOTS network: strides 4 to 32, one cell per stride past the stem.
TRAIN_ARGS = ["--dataset", "imagefolder", "--epochs", "1", "--batch-size", "4", "--channels", "16", "--layers", "5",
              "--auxiliary-weight", "0", "--no-progress"]


def train_backbone(out: Path) -> Path:
    """``nni-decouple train dots_imagenet`` on a tiny image folder: a real run directory with model.pth."""
    from nni_decouple.cli import main

    data = make_image_folder(out.parent / "imagefolder")
    assert main(["train", "dots_imagenet", *TRAIN_ARGS, "--data-root", str(data), "--out", str(out)]) == 0
    return out
