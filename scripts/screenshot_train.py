"""Render docs/images/train.png: the Train nuclei model widget after a run.

Run from the repository root under a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" env PYTHONPATH=src \\
        python scripts/screenshot_train.py [--seconds 60] [--out PATH]

Opens two generated images of envelope-stained nuclei (the kind
``benchmarks/bench_finetune.py`` teaches) with their labels as if painted,
adds both pairs, trains for ``--seconds`` into a throw-away models folder
and saves the window, live plot included, quantised to 256 colours.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _window import save_window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--out", default="docs/images/train.png")
    args = parser.parse_args()
    os.environ["NAPARI_PYRAMIDS_MODELS"] = tempfile.mkdtemp(prefix="models-")

    import napari
    import numpy as np
    from qtpy.QtCore import QEventLoop

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_finetune import envelope_image

    viewer = napari.Viewer(title="napari-pyramids: Train nuclei model")
    rng = np.random.default_rng(2026)
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-pyramids", "Train nuclei model"
    )
    for i in range(2):
        image, labels = envelope_image((256, 256), rng)
        viewer.add_image(image, name=f"envelope {i}")
        viewer.add_labels(labels, name=f"envelope {i} painted").contour = 1
        widget.reset_choices()
        widget.image.value = viewer.layers[f"envelope {i}"]
        widget.labels_layer.value = viewer.layers[f"envelope {i} painted"]
        widget.add_pair.changed.emit(True)
    for layer in viewer.layers[:2]:
        layer.visible = False
    widget.time_limit.value = args.seconds
    widget.model_name.value = "envelope nuclei"
    worker = widget.run()
    loop = QEventLoop()  # an idle event loop: a busy one would starve the training
    worker.finished.connect(loop.quit)
    loop.exec()
    save_window(viewer, args.out, (1400, 900))
    print(widget.status)
    viewer.close()


if __name__ == "__main__":
    main()
