"""The Segment widget on a dask-backed layer: block by block, lazy multiscale Labels."""

import tempfile

import dask.array as da
import numpy as np
import pytest

from napari_pyramids.nn.synthetic import make_nuclei_image
from napari_pyramids.widgets.segment import SegmentWidget
from widget_helpers import run_widget


@pytest.fixture
def labels_folder(tmp_path, monkeypatch):
    """Whole-slide labels go to the temporary directory: this test's folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / "napari-pyramids-labels"


def test_a_dask_layer_gives_lazy_multiscale_labels(viewer, qtbot, labels_folder):
    from napari_pyramids.nn import segment

    image, _ = make_nuclei_image((150, 170), np.random.default_rng(4))
    src = viewer.add_image(
        da.from_array(image, chunks=64), name="slide", scale=(0.5, 0.5)
    )
    widget = SegmentWidget(viewer)
    widget.tile_size.value = 128
    (labels,) = run_widget(qtbot, widget, timeout=120_000)
    assert labels.name == "slide nuclei labels" and labels.multiscale
    levels = [np.asarray(level) for level in labels.data]
    want = segment(image, "nuclei", tile_size=128)  # diameter estimated the same way
    np.testing.assert_array_equal(levels[0], want)
    for k, level in enumerate(levels):  # nearest sampling, every 2**k-th sample
        np.testing.assert_array_equal(level, want[:: 2**k, :: 2**k])
    assert tuple(labels.scale) == tuple(src.scale)
    (written,) = labels_folder.iterdir()
    assert written.name.startswith("slide.") and str(written) in widget.status
    assert f"{want.max()} nuclei in" in widget.status


def test_maps_are_refused_for_a_dask_layer(viewer, labels_folder):
    image, _ = make_nuclei_image((64, 64), np.random.default_rng(4))
    viewer.add_image(da.from_array(image, chunks=32), name="slide")
    widget = SegmentWidget(viewer)
    widget.probabilities.value = True
    assert widget.run() is None
    assert "untick them" in widget.status
    assert not labels_folder.exists()
