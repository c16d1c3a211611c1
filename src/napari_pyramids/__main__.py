"""``python -m napari_pyramids demo [--screenshot PATH]`` and ``... segment IN OUT``.

Opens napari with the astronaut photo, its Gaussian octaves shown side by side
(grid view: every octave covers the same world extent, because octave ``k`` has
scale ``2**k``), and every napari-pyramids widget docked. With ``--screenshot``
the window is rendered to a PNG and the program exits: run it under
``xvfb-run -a`` on a machine without a display.
"""

from __future__ import annotations

import argparse
import sys

# the window size of ``demo --screenshot`` (and of the README's picture)
SCREENSHOT_SIZE = (1400, 860)


def build_demo_viewer(*, show: bool = True, size: tuple[int, int] | None = None):
    """Open a viewer with the demo data and all plugin widgets docked."""
    import napari

    viewer = napari.Viewer(title="napari-pyramids demo", show=show)
    set_up_demo(viewer, size=size)
    return viewer


def set_up_demo(viewer, *, size: tuple[int, int] | None = None) -> None:
    """Put the demo data and every plugin widget into ``viewer``.

    ``size`` (width, height) resizes the window first. The octaves are framed
    once the docks have taken their room, so they fill the canvas left over.
    """
    import npe2

    from napari_pyramids.console import add_pyramid

    if size is not None:
        viewer.window.resize(*size)
    viewer.open_sample("napari-pyramids", "astronaut")
    add_pyramid(viewer, "astronaut", kind="gaussian", levels=5)
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
    frame_octaves(viewer)


def frame_octaves(viewer) -> None:
    """Show the layers side by side as large as the canvas allows, and fit the view.

    Runs Qt's pending events first, so the window's layout (the docks just
    added) has settled and the camera is fit to the canvas left for the view.
    """
    from qtpy.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    grid = viewer.canvas.grid
    grid.shape = grid_shape(len(viewer.layers), *viewer.canvas.size)
    grid.enabled = True
    viewer.reset_view()


def grid_shape(n: int, height: float, width: float) -> tuple[int, int]:
    """(rows, columns) that show ``n`` square tiles largest on a canvas this size.

    The demo's layers, the astronaut and its octaves, all cover the same
    square world extent (octave ``k`` has scale ``2**k``), so each grid cell
    holds a square.
    """
    if n < 1:
        raise ValueError(f"a grid needs at least one tile, got {n}")
    shapes = [(-(-n // columns), columns) for columns in range(1, n + 1)]
    return max(shapes, key=lambda s: (min(height / s[0], width / s[1]), -s[0] * s[1]))


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
    batch = sub.add_parser(
        "segment",
        help="segment every image of a folder: labels files and a measurements CSV",
    )
    batch.add_argument("in_dir", help="folder of tif / png / OME-Zarr images")
    batch.add_argument("out_dir", help="folder for the labels (outside IN_DIR)")
    batch.add_argument("--model", default="nuclei", help="model name or weights file")
    batch.add_argument(
        "--diameter", type=float, default=None, help="nucleus diameter in pixels"
    )
    batch.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.command == "segment":
        return _segment_folder(args)

    import napari

    if not args.screenshot:
        build_demo_viewer()
        napari.run()
        return 0
    from pathlib import Path

    from qtpy.QtWidgets import QApplication

    viewer = build_demo_viewer(size=SCREENSHOT_SIZE)
    for _ in range(20):  # let the canvas draw
        QApplication.processEvents()
    path = Path(args.screenshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print(f"saved the demo window to {path}")
    viewer.close()
    return 0


def _segment_folder(args) -> int:
    """The ``segment`` command: a progress bar, a summary, 1 if a file failed."""
    from tqdm import tqdm

    from napari_pyramids.batch import segment_folder

    with tqdm(unit="image", desc="segment") as bar:

        def progress(done: int, total: int, name: str) -> None:
            bar.total = total
            bar.set_postfix_str(name)
            bar.update(done - bar.n)

        try:
            report = segment_folder(
                args.in_dir,
                args.out_dir,
                model=args.model,
                diameter=args.diameter,
                device=args.device,
                progress=progress,
            )
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(
        f"{len(report.segmented)} segmented, {len(report.skipped)} already done, "
        f"{len(report.failed)} unreadable; measurements: {report.measurements}"
    )
    for name, why in report.failed.items():
        print(f"  could not segment {name}: {why}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
