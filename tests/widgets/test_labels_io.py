"""File > Save Selected Layers with an image and its labels, and open them again."""

import numpy as np

from napari_pyramids.nn.synthetic import make_nuclei_image


def test_save_selected_image_and_labels_then_open(viewer, tmp_path):
    image, labels = make_nuclei_image((120, 100), np.random.default_rng(2))
    viewer.add_image(image, name="cells", scale=(0.5, 0.5))
    viewer.add_labels(labels, name="nuclei", scale=(0.5, 0.5))
    viewer.layers.selection = set(viewer.layers)
    path = str(tmp_path / "cells.ome.zarr")
    written = viewer.layers.save(path, selected=True, plugin="napari-pyramids")
    assert written == [path]
    viewer.layers.clear()
    opened = viewer.open(path, plugin="napari-pyramids")
    assert [layer.name for layer in opened] == ["cells", "cells nuclei"]
    image_layer, labels_layer = opened
    assert labels_layer._type_string == "labels" and labels_layer.multiscale
    np.testing.assert_array_equal(np.asarray(labels_layer.data[0]), labels)
    px = np.array([10.0, 20.0])
    np.testing.assert_allclose(
        labels_layer.data_to_world(px), image_layer.data_to_world(px)
    )
