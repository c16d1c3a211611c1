"""The Segment nuclei (ASPP) widget in a real napari viewer."""

import numpy as np
import pytest

from napari_pyramids.nn.synthetic import make_nuclei_image
from napari_pyramids.widgets.segment import SegmentWidget
from widget_helpers import cancel_after_first_step, run_widget

SCALE, TRANSLATE = (0.5, 2.0), (10.0, -4.0)


@pytest.fixture(scope="module")
def nuclei():
    image, _ = make_nuclei_image((160, 200), np.random.default_rng(3))
    return image


def assert_on_source_grid(layer, src):
    px = np.array([[3.0, 5.0], [100.0, 17.0]])
    np.testing.assert_allclose(layer.data_to_world(px), src.data_to_world(px))


def test_labels_on_the_image_grid(viewer, qtbot, nuclei):
    src = viewer.add_image(nuclei, name="cells", scale=SCALE, translate=TRANSLATE)
    before = nuclei.copy()
    widget = SegmentWidget(viewer)
    assert widget.channel.native.isHidden()  # not RGB: no channel choice
    widget.tile_size.value = 128  # six tiles
    (labels,) = run_widget(qtbot, widget, timeout=60_000)
    assert labels.name == "cells nuclei labels"
    assert labels._type_string == "labels"
    assert labels.data.shape == nuclei.shape and labels.data.max() > 5
    assert tuple(labels.scale) == SCALE and tuple(labels.translate) == TRANSLATE
    assert_on_source_grid(labels, src)
    assert "nuclei in" in widget.status and "on cpu" in widget.status
    np.testing.assert_array_equal(src.data, before)
    # a re-run updates the layer in place
    assert run_widget(qtbot, widget, timeout=60_000)[0] is labels
    assert len(viewer.layers) == 2


def test_defaults_are_the_segment_defaults(viewer):
    from napari_pyramids.nn.defaults import CORE_THRESHOLD

    assert SegmentWidget(viewer).threshold.value == CORE_THRESHOLD


def test_smallest_nucleus_zero_is_auto_and_says_so(viewer, nuclei):
    """0 stands for the default scaled with the diameter."""
    viewer.add_image(nuclei, name="cells")
    widget = SegmentWidget(viewer)
    assert widget.min_size.value == 0 and "0: auto" in widget.min_size.label
    assert widget.settings().min_size is None
    widget.min_size.value = 30
    assert widget.settings().min_size == 30


def test_probabilities_and_branches_are_aligned_layers(viewer, qtbot, nuclei):
    src = viewer.add_image(nuclei, name="cells", scale=SCALE, translate=TRANSLATE)
    widget = SegmentWidget(viewer)
    widget.probabilities.value = True
    widget.branches.value = True
    layers = run_widget(qtbot, widget, timeout=60_000)
    assert [lyr.name for lyr in layers] == [
        "cells nuclei core probability",
        "cells nuclei rim probability",
        "cells nuclei ASPP image pooling",
        "cells nuclei ASPP 1x1",
        "cells nuclei ASPP rate 2",
        "cells nuclei ASPP rate 4",
        "cells nuclei ASPP rate 6",
        "cells nuclei labels",
    ]
    for layer in layers:
        assert layer.data.shape == nuclei.shape
        assert_on_source_grid(layer, src)
    # the image and the labels stay in view: only the core map shows, see-through
    assert [lyr.name for lyr in layers if lyr.visible] == [
        "cells nuclei core probability",
        "cells nuclei labels",
    ]
    assert all(lyr.opacity <= 0.5 for lyr in layers[:-1])
    core, rim = layers[0].data, layers[1].data
    inside = layers[-1].data > 0
    nucleus = core + rim  # probability of "not background"
    assert nucleus[inside].mean() > nucleus[~inside].mean() + 0.5
    assert core[inside].mean() > core[~inside].mean() + 0.1
    assert np.ptp(layers[2].data) < 1e-5 < np.ptp(layers[4].data)


def test_rgb_needs_a_channel(viewer, qtbot, nuclei, monkeypatch):
    u8 = (nuclei / nuclei.max() * 255).astype(np.uint8)
    rgb = np.zeros((*u8.shape, 3), np.uint8)
    rgb[..., 2] = u8  # DAPI in blue
    viewer.add_image(rgb, name="stain", rgb=True)
    widget = SegmentWidget(viewer)
    assert not widget.channel.native.isHidden()  # shown for RGB layers
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_error", lambda msg: shown.append(msg)
    )
    assert widget.run() is None
    assert "RGB" in shown[0] and "blue for DAPI" in shown[0]
    assert len(viewer.layers) == 1
    widget.channel.value = 2
    (labels,) = run_widget(qtbot, widget, timeout=60_000)
    assert labels.data.shape == u8.shape and labels.data.max() > 5


def test_cancel_between_tiles_adds_nothing(viewer, qtbot, nuclei):
    viewer.add_image(nuclei, name="cells")
    widget = SegmentWidget(viewer)
    widget.tile_size.value = 128
    # the first step announces the run, the second reports one tile done
    cancel_after_first_step(qtbot, widget, "tile 1 of", steps=2)
    assert [lyr.name for lyr in viewer.layers] == ["cells"]


def test_bad_checkpoint_and_stack_notify(viewer, qtbot, tmp_path, monkeypatch):
    viewer.add_image(np.zeros((2, 2, 2, 32, 32), np.float32), name="stack")
    widget = SegmentWidget(viewer)
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_error", lambda msg: shown.append(msg)
    )
    assert widget.run() is None
    assert "one 2-D image or a stack" in shown[-1]
    viewer.add_image(np.zeros((32, 32), np.float32), name="plane")
    widget.reset_choices()
    widget.image.value = viewer.layers["plane"]
    widget.model.value = "checkpoint file…"
    assert not widget.checkpoint.native.isHidden()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    widget.checkpoint.value = bad
    assert widget.run() is None
    assert "not a readable safetensors file" in shown[-1]
    assert len(viewer.layers) == 2


def test_manifest_opens_the_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-pyramids", "Segment nuclei (ASPP)"
    )
    assert isinstance(widget, SegmentWidget)


def test_device_and_tile_size_are_remembered(viewer, plugin_settings_dir):
    """npe2 configurations: a new widget starts where the user left the last one."""
    first = SegmentWidget(viewer)
    assert first.tile_size.value == 1024 and first.device.value == "auto"
    first.tile_size.value = 512
    first.device.value = "cpu"
    saved = (plugin_settings_dir / "napari-pyramids.yaml").read_text()
    assert "tile_size: 512" in saved and "device: cpu" in saved
    second = SegmentWidget(viewer)
    assert second.tile_size.value == 512 and second.device.value == "cpu"


def test_nucleus_diameter_in_the_layer_unit(viewer, qtbot, nuclei):
    """A diameter in µm is converted with the layer's pixel spacing; status says it."""
    viewer.add_image(nuclei, name="cells", scale=(0.5, 0.5), units=("um", "um"))
    widget = SegmentWidget(viewer)
    assert widget.estimate.value and not widget.diameter.enabled
    assert list(widget.unit.choices) == ["px", "micrometer"]
    widget.estimate.value = False
    assert widget.diameter.enabled and widget.unit.enabled
    widget.unit.value = "micrometer"
    widget.diameter.value = 30.0  # 60 px: three times the trained size
    assert widget.settings().diameter == 60.0
    (labels,) = run_widget(qtbot, widget, timeout=60_000)
    assert labels.data.shape == nuclei.shape
    assert "nucleus diameter 60.0 px (given), network at octave 1" in widget.status
    widget.estimate.value = True
    assert widget.settings().diameter is None
    run_widget(qtbot, widget, timeout=60_000)
    assert "px (estimated)" in widget.status


def test_the_nuclei_volume_sample_segments_as_a_z_stack(viewer, qtbot, tmp_path):
    """The plugin's own 3-D sample: one id per nucleus through z, a features table."""
    viewer.open_sample("napari-pyramids", "nuclei_volume")
    volume = viewer.layers[0]
    widget = SegmentWidget(viewer)
    assert not widget.axes.native.isHidden() and widget.axes.value == "zyx"
    assert widget.link.native.isHidden()  # no time axis
    (labels,) = run_widget(qtbot, widget, timeout=180_000)
    assert labels.data.shape == volume.data.shape
    assert "axes zyx" in widget.status
    table = labels.features
    assert len(table) == len(np.unique(labels.data)) - 1 > 3
    assert {"label", "pixels", "z_first", "z_last", "mean_intensity"} <= set(table)
    assert (table["z_last"] >= table["z_first"]).all()
    assert (table["z_last"] > table["z_first"]).any()  # nuclei span planes
    saved = widget.save_measurements(tmp_path / "m.csv")
    assert saved.read_text().splitlines()[0].startswith("label,pixels")


def test_time_axis_offers_linking_and_maps_need_a_plane(viewer, monkeypatch, nuclei):
    frames = np.stack([nuclei] * 3)
    viewer.add_image(frames, name="movie", axis_labels=("t", "y", "x"))
    widget = SegmentWidget(viewer)
    assert widget.axes.value == "tyx" and not widget.link.native.isHidden()
    widget.probabilities.value = True
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_error", lambda msg: shown.append(msg)
    )
    assert widget.run() is None and "made for 2-D images" in shown[-1]
