"""Render docs/images/search.png: Template search on the coins sample, as in README.

Run from the repository root under a virtual display (``make screenshots``)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_search.py [PATH]

Opens *Coins with a template rectangle*, docks the widget with its default
layers and settings, sets only "max matches" to 24, presses Search and saves
the window quantised to 256 colours.
"""

import sys

import napari
from _window import save_window


def main(path: str = "docs/images/search.png") -> None:
    viewer = napari.Viewer(title="napari-pyramids: Template search")
    viewer.open_sample("napari-pyramids", "coins_search")
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-pyramids", "Template search (coarse-to-fine)"
    )
    widget.max_matches.value = 24
    widget.run(blocking=True)
    save_window(viewer, path, (1400, 860))
    print(widget.status)
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
