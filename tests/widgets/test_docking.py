"""Docking a widget refits the view: the narrower canvas still shows the whole image."""

import pytest

from napari_pyramids.widgets.blend import BlendWidget
from napari_pyramids.widgets.pyramid import PyramidWidget
from napari_pyramids.widgets.search import SearchWidget
from napari_pyramids.widgets.segment import SegmentWidget


def shown_width(viewer) -> float:
    """How many world units of x the canvas shows at the current zoom."""
    return viewer.window._qt_viewer.canvas.size[1] / viewer.camera.zoom


@pytest.mark.parametrize(
    "widget_type", [PyramidWidget, BlendWidget, SearchWidget, SegmentWidget]
)
def test_docking_refits_the_view(make_napari_viewer, qtbot, widget_type):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    viewer.open_sample("napari-pyramids", "astronaut")
    qtbot.wait(100)
    assert shown_width(viewer) >= 512  # the whole image, before docking
    canvas = viewer.window._qt_viewer.canvas
    wide = canvas.size[1]
    viewer.window.add_dock_widget(widget_type(viewer))
    qtbot.waitUntil(lambda: canvas.size[1] < wide, timeout=5_000)  # the dock is in
    qtbot.waitUntil(lambda: shown_width(viewer) >= 512, timeout=2_000)
