"""The Train nuclei model widget in a real napari viewer."""

import numpy as np
import pytest

from napari_pyramids.nn.synthetic import make_nuclei_image
from napari_pyramids.widgets.segment import SegmentWidget
from napari_pyramids.widgets.train import TrainWidget
from widget_helpers import cancel_after_first_step, run_widget


@pytest.fixture(scope="module")
def painted():
    return make_nuclei_image((128, 128), np.random.default_rng(21))


def _setup(viewer, painted):
    image, labels = painted
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="cells painted")
    widget = TrainWidget(viewer)
    widget.time_limit.value = 5
    widget.model_name.value = "test nuclei"
    return widget


def test_trains_saves_and_the_model_is_in_segment(
    viewer, qtbot, painted, user_models_dir
):
    image, labels = painted
    widget = _setup(viewer, painted)
    assert widget.image.value.name == "cells"
    assert widget.labels_layer.value.name == "cells painted"
    widget.add_pair.changed.emit(True)
    assert "cells + cells painted" in widget.pairs_label.value
    assert run_widget(qtbot, widget, timeout=120_000) == []
    assert "AP@0.5" in widget.status and "saved as 'test nuclei'" in widget.status
    loss_curve, xs, _ = widget._curves["loss"]
    assert len(xs) > 0  # the live plot got the steps
    assert list(user_models_dir.glob("*.safetensors"))
    np.testing.assert_array_equal(viewer.layers["cells painted"].data, labels)
    segment = SegmentWidget(viewer)
    assert "test nuclei" in list(segment.model.choices)
    segment.model.value = "test nuclei"
    segment.image.value = viewer.layers["cells"]
    (result,) = run_widget(qtbot, segment, timeout=60_000)
    assert result.data.shape == image.shape
    # the same name again is refused, nothing overwritten
    shown = []
    qtbot_monkey = pytest.MonkeyPatch()
    qtbot_monkey.setattr(
        "napari.utils.notifications.show_error", lambda msg: shown.append(msg)
    )
    assert widget.run() is None and "exists already" in shown[-1]
    qtbot_monkey.undo()


def test_cancel_saves_nothing(viewer, qtbot, painted, user_models_dir):
    widget = _setup(viewer, painted)
    widget.time_limit.value = 60
    cancel_after_first_step(qtbot, widget, "training:", steps=1)
    assert not user_models_dir.exists() or not list(user_models_dir.iterdir())
    assert "test nuclei" not in list(SegmentWidget(viewer).model.choices)
    assert [layer.name for layer in viewer.layers] == ["cells", "cells painted"]


def test_bad_pairs_notify(viewer, painted, monkeypatch):
    image, _ = painted
    viewer.add_image(image, name="cells")
    viewer.add_labels(np.zeros((128, 100), np.uint16), name="wrong size")
    widget = TrainWidget(viewer)
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_error", lambda msg: shown.append(msg)
    )
    assert widget.run() is None
    assert "differ in shape" in shown[-1]
    viewer.layers["wrong size"].data = np.zeros((128, 128), np.uint16)
    assert widget.run() is None
    assert "labels are empty" in shown[-1]
    widget.time_limit.value = 5
    widget.model_name.value = "  "
    assert widget.run() is None and "name" in shown[-1]


def test_rgb_image_and_a_region_outside_notify(viewer, painted, monkeypatch):
    image, labels = painted
    viewer.add_image(np.dstack([image] * 3).astype(np.uint16), name="rgb", rgb=True)
    viewer.add_labels(labels, name="painted")
    widget = TrainWidget(viewer)
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_error", lambda msg: shown.append(msg)
    )
    assert widget.run() is None
    assert "not one 2-D grey image" in shown[-1]
    viewer.add_image(image, name="grey")
    viewer.add_shapes([[[500, 500], [500, 600], [600, 600], [600, 500]]], name="far")
    widget.reset_choices()
    widget.image.value = viewer.layers["grey"]
    widget.region.value = "far"
    assert widget.run() is None
    assert "lies outside the image" in shown[-1]


def test_manifest_opens_the_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-pyramids", "Train nuclei model"
    )
    assert isinstance(widget, TrainWidget)
    assert widget.labels is True  # every control shows its label


def test_save_to_a_chosen_file(viewer, qtbot, painted, tmp_path):
    widget = _setup(viewer, painted)
    target = tmp_path / "mine.safetensors"
    widget.save_to.value = target
    run_widget(qtbot, widget, timeout=120_000)
    assert target.is_file() and str(target) in widget.status
    assert "test nuclei" in list(SegmentWidget(viewer).model.choices)
