"""A tiny ImageFolder dataset on disk (real PNGs), with a bad file where a test wants one."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def make_image_folder(root: Path, bad_name: str | None = None, bad_bytes: bytes = b"") -> Path:
    """ROOT/{train,val}/{a,b}/ with three real PNGs each, plus one bad file in train/a when asked."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in "ab":
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")
    if bad_name:
        (root / "train" / "a" / bad_name).write_bytes(bad_bytes)
    return root


def truncated_png() -> bytes:
    """The first 60 bytes of a PNG: PIL knows the format but cannot decode it."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()[:60]
