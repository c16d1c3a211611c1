"""Render docs/images/segment.png: the Segment widget and its result.

Run from the repository root under a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" env PYTHONPATH=src \\
        python scripts/screenshot_segment.py [--image PATH] [--out PATH]

Opens a fluorescence image (``--image``, a tif or png; by default image
2dec81a678ddcac2 of the shared DSB 2018 validation fold, whose nuclei are
about 50 px across, when ``../shared/data`` is there, else the generated 2-D
nuclei sample), runs the widget with the nucleus diameter estimated, draws
the labels as outlines so the nuclei stay visible, and saves the window
quantised to 256 colours.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _window import save_window

SHARED_IMAGE = (
    Path(__file__).resolve().parents[2]
    / "shared/data/dsb2018-train/images/2dec81a678ddcac2.tif"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--out", default="docs/images/segment.png")
    args = parser.parse_args()

    import napari
    from napari.utils.colormaps import DirectLabelColormap

    from napari_pyramids.nn.data import read_image

    viewer = napari.Viewer(title="napari-pyramids: Segment nuclei (ASPP)")
    path = args.image or (SHARED_IMAGE if SHARED_IMAGE.is_file() else None)
    if path is None:
        viewer.open_sample("napari-pyramids", "nuclei_2d")
    else:
        viewer.add_image(read_image(path), name=f"DSB {path.stem[:6]}")
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-pyramids", "Segment nuclei (ASPP)"
    )
    widget.run(blocking=True)
    labels = viewer.layers[-1]
    labels.contour = 2  # outlines: the nuclei stay visible
    # one bright colour: some of napari's random label colours are too dark
    # to see on a fluorescence image, which would read as missed nuclei
    labels.colormap = DirectLabelColormap(color_dict={None: "yellow", 0: "transparent"})
    save_window(viewer, args.out, (1400, 860))
    print(widget.status)
    viewer.close()


if __name__ == "__main__":
    main()
