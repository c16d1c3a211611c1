"""Annotated nuclei on disk: image/label folders, the validation rule, nucleus size.

The layout is the one users keep their own annotations in::

    root/images/<id>.tif   (or .tiff / .png): one 2-D image per file
    root/labels/<id>.tif   instance labels of the same shape, 0 = background

numpy only (tifffile and OpenCV read the files): no torch, so scripts and the
benchmark can list and score data without loading the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "AnnotatedImage",
    "is_validation",
    "list_ids",
    "nucleus_diameter",
    "read_folder",
    "read_image",
    "split_ids",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")

#: Share of ids (in percent) in the validation fold: never trained or tuned on.
VALIDATION_PERCENT = 15
#: The next ids by the same hash: the tuning fold, left out of the base model's
#: training so that thresholds are chosen on images it did not learn.
TUNING_PERCENT = 7


def _bucket(image_id: str) -> int:
    return int(hashlib.sha1(image_id.encode()).hexdigest(), 16) % 100


def is_validation(image_id: str) -> bool:
    """True for the ids of the validation fold (SHA-1 of the id mod 100 < 15)."""
    return _bucket(image_id) < VALIDATION_PERCENT


def split_ids(ids: Iterable[str]) -> dict[str, list[str]]:
    """``{"train": [...], "tune": [...], "validation": [...]}`` by the fixed rule.

    The rule depends on the id alone, so a folder that grows keeps every old
    id in its fold.
    """
    folds: dict[str, list[str]] = {"train": [], "tune": [], "validation": []}
    for image_id in sorted(ids):
        bucket = _bucket(image_id)
        if bucket < VALIDATION_PERCENT:
            folds["validation"].append(image_id)
        elif bucket < VALIDATION_PERCENT + TUNING_PERCENT:
            folds["tune"].append(image_id)
        else:
            folds["train"].append(image_id)
    return folds


def read_image(path: str | Path) -> np.ndarray:
    """A 2-D array from a tif or png file, in its stored dtype.

    RGB(A) files whose colour channels are equal (grey saved as colour) are
    reduced to one channel; other colour images are refused, since a nuclei
    model takes the nuclear stain alone.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        array = tifffile.imread(path)
    elif suffix == ".png":
        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ValueError(f"{path}: not a readable png file")
        if array.ndim == 3:
            array = array[..., 2::-1] if array.shape[-1] >= 3 else array
    else:
        raise ValueError(
            f"{path}: unsupported file type {suffix!r}; use one of {IMAGE_SUFFIXES}"
        )
    array = np.squeeze(array)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        colour = array[..., :3]
        if (colour == colour[..., :1]).all():
            array = colour[..., 0]
        else:
            raise ValueError(
                f"{path}: a colour image {array.shape}; save the nuclear stain as "
                "one grey channel"
            )
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D image, got shape {array.shape}")
    return array


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    }


def list_ids(root: str | Path) -> list[str]:
    """Ids with both an image and a labels file under ``root``; sorted."""
    root = Path(root)
    images, labels = _files(root / "images"), _files(root / "labels")
    unpaired = sorted(set(images) ^ set(labels))
    if unpaired:
        raise ValueError(
            f"{root}: {len(unpaired)} files have no partner in images/ or labels/ "
            f"(e.g. {unpaired[:3]}); every image needs a labels file of the same name"
        )
    if not images:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in images/")
    return sorted(images)


@dataclass(frozen=True)
class AnnotatedImage:
    """One image with its instance labels (same shape; 0 = background)."""

    id: str
    image: np.ndarray
    labels: np.ndarray

    @property
    def diameter(self) -> float:
        """Median nucleus diameter in pixels (:func:`nucleus_diameter`)."""
        return nucleus_diameter(self.labels)


def read_folder(
    root: str | Path, ids: Iterable[str] | None = None
) -> list[AnnotatedImage]:
    """Read the pairs of ``root`` (all of them, or those in ``ids``)."""
    root = Path(root)
    images, labels = _files(root / "images"), _files(root / "labels")
    wanted = list_ids(root) if ids is None else list(ids)
    pairs = []
    for image_id in wanted:
        if image_id not in images or image_id not in labels:
            raise FileNotFoundError(f"{root}: no image and labels named {image_id!r}")
        image, label = read_image(images[image_id]), read_image(labels[image_id])
        if image.shape != label.shape:
            raise ValueError(
                f"{root}: {image_id}: image {image.shape} and labels {label.shape} "
                "differ in shape"
            )
        if label.dtype.kind not in "iu":
            raise ValueError(f"{root}: {image_id}: labels must be integers")
        pairs.append(AnnotatedImage(image_id, image, label))
    return pairs


def nucleus_diameter(labels: np.ndarray) -> float:
    """Median equivalent diameter ``2 sqrt(area / pi)`` of the labelled nuclei.

    The size a model is trained and run at: the diameter of the disc with a
    nucleus's area, the median over the nuclei of one image. NaN when there
    are no nuclei.
    """
    areas = np.bincount(np.asarray(labels).ravel().astype(np.int64, copy=False))[1:]
    areas = areas[areas > 0]
    if not len(areas):
        return float("nan")
    return float(2.0 * np.sqrt(np.median(areas) / np.pi))
