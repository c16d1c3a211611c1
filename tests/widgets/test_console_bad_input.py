"""add_pyramid's bad input gets clear errors (issue 17 items 8, 9)."""

import numpy as np
import pytest

import napari_pyramids as npp


def test_no_viewer_is_named():
    with pytest.raises(TypeError, match="viewer must be a napari.Viewer"):
        npp.add_pyramid(None, "img")


def test_one_level_is_refused_instead_of_copying_the_image(viewer):
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    with pytest.raises(ValueError, match="levels=1 is the image itself"):
        npp.add_pyramid(viewer, "img", levels=1)
    viewer.add_image(np.zeros((6, 6), np.float32), name="tiny")
    with pytest.raises(ValueError, match="min_size"):
        npp.add_pyramid(viewer, "tiny")  # 6 px < 2 * min_size: only octave 0
    assert [layer.name for layer in viewer.layers] == ["img", "tiny"]
