"""Labels stored beside an OME-Zarr image (NGFF labels/), read back everywhere."""

import numpy as np
import pytest
import zarr

import napari_pyramids as npp
from napari_pyramids.lazy.napari_io import read_pyramid, write_image_with_labels
from napari_pyramids.lazy.ome_zarr_labels import (
    read_ome_zarr_labels,
    write_ome_zarr_labels,
)
from napari_pyramids.nn.synthetic import make_nuclei_image


@pytest.fixture(scope="module")
def scene():
    return make_nuclei_image((150, 131), np.random.default_rng(6))


def test_round_trip_through_the_napari_hooks_and_ome_zarr_py(tmp_path, scene):
    image, labels = scene
    path = str(tmp_path / "cells.ome.zarr")
    layers = [
        (image, {"name": "cells", "scale": (0.5, 0.5), "translate": (0, 0)}, "image"),
        (labels, {"name": "nuclei"}, "labels"),
    ]
    assert write_image_with_labels(path, layers) == [path]
    read = read_pyramid(path)
    assert [kind for *_, kind in read] == ["image", "labels"]
    levels, meta, _ = read[1]
    assert meta["name"] == "cells nuclei" and meta["scale"] == [0.5, 0.5]
    image_levels = read[0][0]
    assert len(levels) == len(image_levels) > 2
    for k, level in enumerate(levels):
        step = 2**k
        np.testing.assert_array_equal(np.asarray(level), labels[::step, ::step])
        assert level.shape == image_levels[k].shape  # the image's grid at level k
        assert level.dtype == labels.dtype
    # another NGFF reader opens them too
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    nodes = [n for n in Reader(parse_url(path))() if n.load(Label)]
    assert len(nodes) == 1
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), labels)
    # and the metadata validates
    from ome_zarr_models.v05.image_label import ImageLabel

    ImageLabel.from_zarr(zarr.open_group(path + "/labels/nuclei", mode="r"))


def test_bad_labels_are_refused(tmp_path, scene):
    image, labels = scene
    path = tmp_path / "cells.ome.zarr"
    npp.write_ome_zarr(image, path, levels=3)
    with pytest.raises(ValueError, match="do not fit the image"):
        write_ome_zarr_labels(labels[:-1], path)
    with pytest.raises(ValueError, match="integers"):
        write_ome_zarr_labels(labels.astype(np.float32), path)
    write_ome_zarr_labels(labels, path, name="nuclei")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_ome_zarr_labels(labels, path, name="nuclei")
    assert list(read_ome_zarr_labels(path)) == ["nuclei"]
    with pytest.raises(ValueError, match="one image layer"):
        write_image_with_labels(str(tmp_path / "x.zarr"), [(labels, {}, "labels")])
    with pytest.raises(ValueError, match="do not fit the image"):
        write_image_with_labels(
            str(tmp_path / "y.zarr"),
            [
                (image, {"name": "a"}, "image"),
                (labels[:, :-2], {"name": "b"}, "labels"),
            ],
        )
    assert not (tmp_path / "y.zarr").exists()  # nothing half-written
