"""Render docs/images/segment.png: the Segment widget and its result.

Run from the repository root under a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" env PYTHONPATH=src \\
        python scripts/screenshot_segment.py [docs/images/segment.png]

Opens the generated 2-D nuclei sample, runs the widget (labels plus the ASPP
branches, the widest atrous rate on show, added over the image), draws the
labels as outlines so the nuclei stay visible, zooms in on a corner, and
saves the window quantised to 256 colours.
"""

from __future__ import annotations

import sys


def main(path: str = "docs/images/segment.png") -> None:
    import napari
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-pyramids: Segment nuclei (ASPP)")
    viewer.open_sample("napari-pyramids", "nuclei_2d")
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-pyramids", "Segment nuclei (ASPP)"
    )
    widget.branches.value = True
    widget.run(blocking=True)
    branch = viewer.layers["synthetic nuclei nuclei ASPP rate 6"]
    branch.blending, branch.opacity = "additive", 0.6
    viewer.layers["synthetic nuclei nuclei labels"].contour = 2  # nuclei show
    viewer.window._qt_window.resize(1400, 860)
    viewer.scene.camera.center = (0, 160, 180)
    viewer.scene.camera.zoom = 2.2
    for _ in range(20):  # let Qt lay out the dock and the canvas draw
        QApplication.processEvents()
    viewer.screenshot(path, canvas_only=False, flash=False)
    viewer.close()
    image = Image.open(path).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"saved {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
