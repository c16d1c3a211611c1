"""Annotated folders: reading, the fixed validation rule, nucleus size."""

import hashlib

import cv2
import numpy as np
import pytest
import tifffile

from napari_pyramids.nn.data import (
    is_validation,
    list_ids,
    nucleus_diameter,
    read_folder,
    read_image,
    split_ids,
)


def _write_pair(root, image_id, image, labels, suffix=".tif"):
    (root / "images").mkdir(exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    for folder, array in (("images", image), ("labels", labels)):
        path = root / folder / f"{image_id}{suffix}"
        if suffix == ".png":
            cv2.imwrite(str(path), array)
        else:
            tifffile.imwrite(path, array)


def test_validation_rule_is_the_sha1_bucket():
    ids = [f"{i:04x}beef" for i in range(400)]
    folds = split_ids(ids)
    expected = [
        i for i in ids if int(hashlib.sha1(i.encode()).hexdigest(), 16) % 100 < 15
    ]
    assert folds["validation"] == sorted(expected)
    assert all(is_validation(i) for i in folds["validation"])
    assert not any(is_validation(i) for i in folds["train"] + folds["tune"])
    assert sorted(sum(folds.values(), [])) == sorted(ids)
    # about 15 % and 7 %
    assert 40 < len(folds["validation"]) < 80 and 12 < len(folds["tune"]) < 45


def test_read_folder_tif_and_png(tmp_path):
    labels = np.zeros((20, 30), np.uint16)
    labels[2:8, 2:8] = 1
    labels[10:18, 10:20] = 7
    image = (labels > 0).astype(np.uint8) * 200
    _write_pair(tmp_path, "a", image, labels)
    _write_pair(tmp_path, "b", np.dstack([image] * 3), labels, suffix=".png")
    assert list_ids(tmp_path) == ["a", "b"]
    pairs = read_folder(tmp_path)
    assert [p.id for p in pairs] == ["a", "b"]
    for pair in pairs:
        np.testing.assert_array_equal(pair.image, image)  # grey RGB png -> 2-D
        np.testing.assert_array_equal(pair.labels, labels)


def test_folder_problems_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        list_ids(tmp_path)
    labels = np.ones((8, 8), np.uint16)
    _write_pair(tmp_path, "a", np.zeros((8, 8), np.uint8), labels)
    tifffile.imwrite(tmp_path / "images" / "lonely.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="no partner.*lonely"):
        list_ids(tmp_path)
    (tmp_path / "images" / "lonely.tif").unlink()
    tifffile.imwrite(tmp_path / "labels" / "a.tif", np.ones((8, 9), np.uint16))
    with pytest.raises(ValueError, match="differ in shape"):
        read_folder(tmp_path)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 9
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    with pytest.raises(ValueError, match="colour image"):
        read_image(tmp_path / "c.png")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_image(tmp_path / "x.jpg")


def test_nucleus_diameter_is_the_median_equivalent_diameter():
    labels = np.zeros((100, 100), np.int32)
    yy, xx = np.mgrid[:100, :100]
    for i, (cy, cx, r) in enumerate([(20, 20, 5), (50, 50, 10), (80, 80, 15)], 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = i
    assert nucleus_diameter(labels) == pytest.approx(20, rel=0.03)
    assert np.isnan(nucleus_diameter(np.zeros((4, 4), np.uint8)))
