"""Segmenting a folder: labels per image, one CSV, skips, corrupt files named."""

import numpy as np
import pytest
import tifffile

from napari_pyramids.__main__ import main
from napari_pyramids.batch import segment_folder
from napari_pyramids.nn.synthetic import make_nuclei_image


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(4)
    for i in range(3):
        image, _ = make_nuclei_image((96, 112), rng)
        tifffile.imwrite(images / f"cell{i}.tif", image)
    (images / "broken.tif").write_bytes(b"not a tif at all")
    return images


def test_a_folder_with_a_corrupt_file(folder, tmp_path, capsys):
    out = tmp_path / "labels"
    assert main(["segment", str(folder), str(out)]) == 1  # one file failed
    err = capsys.readouterr().err
    assert "broken.tif" in err
    assert sorted(p.name for p in out.glob("*_labels.tif")) == [
        "cell0_labels.tif",
        "cell1_labels.tif",
        "cell2_labels.tif",
    ]
    labels = tifffile.imread(out / "cell0_labels.tif")
    assert labels.shape == (96, 112) and labels.max() > 0
    table = (out / "measurements.csv").read_text().splitlines()
    assert table[0].startswith("image,label,pixels")
    assert {line.split(",")[0] for line in table[1:]} == {
        "cell0.tif",
        "cell1.tif",
        "cell2.tif",
    }
    assert not list(out.glob(".*partial*"))
    again = segment_folder(folder, out)  # a re-run does nothing new
    assert again.segmented == [] and len(again.skipped) == 3
    assert list(again.failed) == ["broken.tif"]


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        segment_folder(empty, tmp_path / "out")
    with pytest.raises(ValueError, match="inside"):
        segment_folder(empty, empty / "labels")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        segment_folder(tmp_path / "missing", tmp_path / "out")
