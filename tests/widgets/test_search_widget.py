"""The Search widget in a real napari viewer: a Shapes rectangle in, matches out."""

import numpy as np
import pytest
from skimage import data

from napari_pyramids.widgets.search import SearchWidget
from widget_helpers import cancel_after_first_step


def test_rectangle_on_a_scaled_image_finds_it(viewer, qtbot):
    scene = data.camera().astype(np.float32)
    before = scene.copy()
    image = viewer.add_image(scene, name="camera", scale=(2.0, 2.0), translate=(5, 7))
    # a rectangle over pixels rows 200..263, cols 300..363, in world coordinates
    world = np.array([[200, 300], [264, 364]]) * 2.0 + np.array([5, 7])
    shapes = viewer.add_shapes([world], shape_type="rectangle", name="roi")
    widget = SearchWidget(viewer)
    widget.image.value = image
    widget.template_image.value = image
    widget.rectangle.value = shapes
    worker = widget.run()
    assert worker is not None, widget.status
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    names = [layer.name for layer in widget.last_layers]
    # bottom to top: the trace under the boxes, the scored centres on top
    assert names == ["camera search trace", "camera match boxes", "camera matches"]
    points = viewer.layers["camera matches"]
    # the match centre (sub-pixel), in world coordinates, is the rectangle's centre
    centre = points.data_to_world(points.data[0])
    np.testing.assert_allclose(centre, np.array([231.5, 331.5]) * 2 + [5, 7], atol=0.05)
    assert points.features["score"][0] == pytest.approx(1.0, abs=1e-5)
    # every octave's candidates, in the image's pixels: octave 0 ends on the match
    trace = viewer.layers["camera search trace"]
    assert tuple(trace.scale) == (2.0, 2.0) and tuple(trace.translate) == (5, 7)
    assert trace.features["octave"].max() > 0
    last = trace.data[trace.features["octave"] == 0]
    assert np.min(np.linalg.norm(last - [231.5, 331.5], axis=1)) <= 1
    assert "exhaustive" in widget.status
    np.testing.assert_array_equal(scene, before)


def test_empty_shapes_and_outside_rectangle_are_reported(viewer):
    image = viewer.add_image(data.camera(), name="camera")
    widget = SearchWidget(viewer)
    widget.image.value = image
    widget.template_image.value = image
    empty = viewer.add_shapes(name="empty")
    widget.reset_choices()  # napari does this when the widget is docked
    widget.rectangle.value = empty
    assert widget.run() is None
    assert "empty" in widget.status
    outside = viewer.add_shapes(
        [np.array([[900, 900], [950, 990]])], shape_type="rectangle", name="far"
    )
    widget.reset_choices()
    widget.rectangle.value = outside
    assert widget.run() is None
    assert "outside" in widget.status
    with pytest.raises(ValueError, match="outside"):
        widget.run(blocking=True)


def test_cancel_mid_search_adds_nothing(viewer, qtbot):
    """Cancel after the coarsest octave: the search stops there, no layer added."""
    image = viewer.add_image(data.camera(), name="camera")
    template = viewer.add_image(data.camera()[100:164, 200:264], name="template")
    widget = SearchWidget(viewer)
    widget.reset_choices()
    widget.image.value = image
    widget.template_image.value = template
    widget.rectangle.value = None  # the whole "template from" layer
    cancel_after_first_step(qtbot, widget, "octave")
    assert [layer.name for layer in viewer.layers] == ["camera", "template"]


def test_exhaustive_timing_is_opencv_on_2d_only():
    from napari_pyramids.actions.search import exhaustive_seconds
    from napari_pyramids.layers import Source

    rgb = Source(data.astronaut(), "astronaut", (1.0, 1.0), (0.0, 0.0), -1)
    assert exhaustive_seconds(rgb, data.astronaut()[10:40, 10:40]) > 0
    vol = np.zeros((4, 30, 30), np.float32)
    volume = Source(vol, "vol", (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    assert exhaustive_seconds(volume, vol[:2, :8, :8]) is None


def test_scales_control_finds_the_eye_from_a_closer_view(viewer, qtbot):
    """The zoomed sample: with scales 0.5-2 the eye is found at its scale; the
    match point sits at the sub-pixel centre and the box has the match's size."""
    from napari_pyramids.sample_data import zoomed_template_arrays

    photo, eye, (corner, scale) = zoomed_template_arrays()
    image = viewer.add_image(photo, name="astronaut", rgb=True)
    template = viewer.add_image(eye, name="eye", rgb=True)
    widget = SearchWidget(viewer)
    widget.reset_choices()
    widget.image.value = image
    widget.template_image.value = template
    widget.rectangle.value = None
    widget.compare.value = False
    widget.scales.value = (0.5, 2.0)
    worker = widget.run()
    assert worker is not None, widget.status
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    points = viewer.layers["astronaut matches"]
    found = points.features["scale"][0]
    assert found == pytest.approx(scale, rel=0.05)
    centre = np.add(corner, (np.array(eye.shape[:2]) - 1) * scale / 2)
    np.testing.assert_allclose(points.data[0], centre, atol=2)
    assert "at scale" in widget.status
    (box,) = viewer.layers["astronaut match boxes"].data
    # box corners are float32 layer coordinates: equal to float32 precision
    np.testing.assert_allclose(
        np.ptp(box, axis=0), np.array(eye.shape[:2]) * found, rtol=1e-6
    )
    # the trace carries the scale each candidate was examined at
    trace = viewer.layers["astronaut search trace"]
    assert np.all((trace.features["scale"] >= 0.5) & (trace.features["scale"] <= 2))


def test_with_no_rectangle_the_larger_picture_is_searched(viewer):
    """The zoomed sample as it opens: the eye (the latest layer) is the
    template and the astronaut, larger, the image searched."""
    viewer.open_sample("napari-pyramids", "zoomed_search")
    widget = SearchWidget(viewer)
    widget.reset_choices()
    assert widget.rectangle.value is None
    assert widget.template_image.value.name == "eye from a closer view"
    assert widget.image.value.name == "astronaut"
    # a rectangle drawn on the astronaut makes it both again
    viewer.add_shapes([[[100, 100], [160, 180]]], shape_type="rectangle")
    viewer.layers.selection.active = viewer.layers["astronaut"]
    widget = SearchWidget(viewer)
    widget.reset_choices()
    assert widget.image.value is widget.template_image.value


def test_scales_control_one_scale_is_no_range():
    from napari_pyramids.widgets.search import search_scales

    assert search_scales((1.0, 1.0)) is None
    assert search_scales((0.5, 2.0)) == (0.5, 2.0)


def test_the_coins_sample_as_the_readme_says(viewer, qtbot):
    """Open the sample, set max matches to 24, press Search: the 24 coins."""
    viewer.open_sample("napari-pyramids", "coins_search")
    viewer.add_image(data.camera(), name="elsewhere", translate=(2000, 2000))
    widget = SearchWidget(viewer)
    assert widget.rectangle.value.name == "template rectangle"
    assert widget.image.value.name == "coins"  # the image the rectangle is on
    assert widget.template_image.value.name == "coins"
    widget.max_matches.value = 24
    worker = widget.run()
    assert worker is not None, widget.status
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert widget.status.startswith("24 match(es)")
    boxes = viewer.layers["coins match boxes"].data
    sides = np.array([np.ptp(b, axis=0) for b in boxes])
    np.testing.assert_allclose(sides, 52)  # coin-sized boxes, not the whole image
    matches = viewer.layers["coins matches"]
    assert min(matches.features["score"]) > 0.5
    # readable: trace discs a few pixels wide, scores not yellow on yellow boxes
    trace = viewer.layers["coins search trace"]
    assert trace.size.max() <= 8
    assert not np.allclose(matches.text.color.constant, [1, 1, 0, 1])
