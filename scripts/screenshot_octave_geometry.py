"""Render docs/images/octave_geometry.png: why a coarse octave overhangs the image.

Run from the repository root under a virtual display (``make screenshots``)::

    xvfb-run -a -s "-screen 0 1600x1000x24" \\
        python scripts/screenshot_octave_geometry.py [PATH]

The astronaut's top-left corner with its Gaussian octave 5 (pixels 32 wide)
drawn half see-through over it, and the image's edge outlined in cyan: each
coarse pixel is centred on the image pixel REDUCE kept (every 32nd, from the
first), so the first coarse pixel reaches 16 pixels past the edge.
"""

import sys

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_pyramids import add_pyramid

OCTAVE = 5


def main(path: str = "docs/images/octave_geometry.png") -> None:
    viewer = napari.Viewer(title="napari-pyramids: octave geometry")
    viewer.open_sample("napari-pyramids", "astronaut")
    layers = add_pyramid(viewer, viewer.layers["astronaut"], levels=OCTAVE + 1)
    for layer in layers[:-1]:
        layer.visible = False
    layers[-1].opacity = 0.6
    edge = np.array([[-0.5, -0.5], [-0.5, 511.5], [511.5, 511.5], [511.5, -0.5]])
    viewer.add_shapes(
        [edge],
        shape_type="rectangle",
        name="image edge",
        edge_color="cyan",
        face_color="transparent",
        edge_width=1.5,
    )
    kept = np.array([[y, x] for y in (0, 32, 64) for x in (0, 32, 64)], float)
    viewer.add_points(kept, name="pixels REDUCE keeps", size=4, face_color="magenta")
    viewer.window._qt_window.resize(900, 700)
    for _ in range(5):
        QApplication.processEvents()
    viewer.camera.center = (40, 40)
    viewer.camera.zoom = 5
    for _ in range(20):
        QApplication.processEvents()
    viewer.screenshot(path, canvas_only=True, flash=False)
    print(f"saved {path}")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
