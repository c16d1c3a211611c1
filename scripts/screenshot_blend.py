"""Make docs/images/blend.png: the Blend widget and its cut, feather, pyramid results.

Run under a display, e.g. ``xvfb-run -a python scripts/screenshot_blend.py``.
"""

import sys

import napari
from PIL import Image
from qtpy.QtWidgets import QApplication

from napari_pyramids.widgets.blend import BlendWidget


def main(path: str = "docs/images/blend.png") -> None:
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 560)
    viewer.open_sample("napari-pyramids", "blend_pair")
    _, widget = viewer.window.add_plugin_dock_widget("napari-pyramids", "Blend")
    assert isinstance(widget, BlendWidget)
    # the widget's own defaults on the sample: A = cat, B = coffee, the mask
    picked = [widget.image_a.value, widget.image_b.value, widget.mask.value]
    assert [layer.name for layer in picked] == ["cat", "coffee", "blend mask"]
    for method in ("cut", "feather", "pyramid"):  # the widget ends on "pyramid"
        widget.method.value = method
        widget.feather_width.value = 48.0
        widget.run(blocking=True)
    for name in ("cat", "coffee", "blend mask"):
        viewer.layers[name].visible = False
    grid = viewer.canvas.grid  # napari >= 0.9 (viewer.grid before)
    grid.enabled = True
    grid.shape = (1, 3)
    grid.spacing = 0.02  # a thin gap, so the three results read apart
    for _ in range(3):  # let Qt lay out the dock and canvas before framing the view
        QApplication.processEvents()
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(path, canvas_only=False, flash=False)
    viewer.close()
    # A 256-colour palette keeps the PNG small enough for the README (< 300 KB).
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
