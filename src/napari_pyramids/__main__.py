"""``python -m napari_pyramids demo [--screenshot PATH]``.

Opens napari with the astronaut photo, its Gaussian octaves shown side by side
(grid view: every octave covers the same world extent, because octave ``k`` has
scale ``2**k``), and every napari-pyramids widget docked. With ``--screenshot``
the window is rendered to a PNG and the program exits: run it under
``xvfb-run -a`` on a machine without a display.
"""

from __future__ import annotations

import argparse
import sys


def build_demo_viewer(*, show: bool = True):
    """Open a viewer with the demo data and all plugin widgets docked."""
    import napari
    import npe2

    from napari_pyramids.console import add_pyramid

    viewer = napari.Viewer(title="napari-pyramids demo", show=show)
    viewer.open_sample("napari-pyramids", "astronaut")
    add_pyramid(viewer, "astronaut", kind="gaussian", levels=5)
    # napari >= 0.9 keeps grid settings on viewer.canvas; older ones on viewer
    canvas = getattr(viewer, "canvas", None)
    (canvas.grid if hasattr(canvas, "grid") else viewer.grid).enabled = True
    viewer.layers.selection.active = viewer.layers["astronaut"]

    manifest = npe2.PluginManager.instance().get_manifest("napari-pyramids")
    docks = [
        viewer.window.add_plugin_dock_widget(
            "napari-pyramids", contribution.display_name, tabify=i > 0
        )[0]
        for i, contribution in enumerate(manifest.contributions.widgets)
    ]
    docks[0].show()
    docks[0].raise_()  # the Pyramid tab in front
    viewer.reset_view()
    return viewer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m napari_pyramids", description="napari-pyramids tools"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="open napari with sample data and the widgets")
    demo.add_argument(
        "--screenshot",
        metavar="PATH",
        help="render the window to this PNG and exit (headless: use xvfb-run -a)",
    )
    args = parser.parse_args(argv)

    import napari

    viewer = build_demo_viewer()
    if args.screenshot:
        from qtpy.QtWidgets import QApplication

        viewer.window._qt_window.resize(1400, 860)
        for _ in range(20):  # let Qt lay out the docks and the canvas draw
            QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False, flash=False)
        print(f"saved {args.screenshot}")
        viewer.close()
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
