"""The demo window (`python -m napari_pyramids demo`): octaves framed after docking."""

import pytest

from napari_pyramids.__main__ import SCREENSHOT_SIZE, grid_shape, set_up_demo


@pytest.mark.parametrize(
    ("n", "height", "width", "expected"),
    [
        (5, 810, 608, (3, 2)),  # a tall canvas between the docks: three rows
        (5, 600, 1200, (2, 3)),  # a wide one: three columns
        (4, 800, 800, (2, 2)),
        (1, 300, 900, (1, 1)),
        (3, 100, 1000, (1, 3)),
    ],
)
def test_grid_shape_shows_square_tiles_largest(n, height, width, expected):
    assert grid_shape(n, height, width) == expected


def test_grid_shape_needs_a_tile():
    with pytest.raises(ValueError, match="at least one tile"):
        grid_shape(0, 100, 100)


def test_demo_fits_the_octaves_to_the_canvas_left_by_the_docks(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    set_up_demo(viewer, size=SCREENSHOT_SIZE)

    assert len(viewer.window.dock_widgets) == 5  # every widget of the plugin
    height, width = viewer.canvas.size
    assert width < SCREENSHOT_SIZE[0] - 600  # the docks took their room first
    grid = viewer.canvas.grid
    assert grid.enabled
    assert grid.shape == grid_shape(len(viewer.layers), height, width)
    # every octave covers the astronaut's 512 x 512 world extent; framed, one
    # tile fills its grid cell but for napari's 5 % margin
    tile = viewer.scene.camera.zoom * 512
    assert tile >= 0.9 * min(viewer.canvas.viewbox_size(viewer.layers))
    assert tile * grid.shape[1] <= width and tile * grid.shape[0] <= height
