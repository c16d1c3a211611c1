"""Render docs/images/demo.png, the README's first picture: the demo window.

Run from the repository root under a virtual display (``make screenshots``
runs every screenshot script so)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_demo.py [PATH]

The same window as ``python -m napari_pyramids demo``, saved quantised to 256
colours. ``make demo`` without a display writes its own, unquantised
screenshot to build/demo.png and leaves this picture alone.
"""

import sys

from _window import save_window

from napari_pyramids.__main__ import SCREENSHOT_SIZE, build_demo_viewer


def main(path: str = "docs/images/demo.png") -> None:
    viewer = build_demo_viewer(size=SCREENSHOT_SIZE)
    save_window(viewer, path, SCREENSHOT_SIZE)
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
