"""The Blend widget in a real napari viewer: each mask source, octaves, bad input."""

import re

import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.layers import mask_source_from_layer, source_from_layer
from napari_pyramids.sample_data import blend_pair_arrays
from napari_pyramids.widgets.blend import BlendWidget
from widget_helpers import cancel_after_first_step, run_widget

RNG = np.random.default_rng(3)
SCALE, TRANSLATE = (2.0, 2.0), (10.0, 20.0)


@pytest.fixture
def pair(viewer):
    """Cat (A) and coffee (B) on a scaled, shifted grid, as the sample ships them."""
    cat, coffee, _ = blend_pair_arrays()
    a = viewer.add_image(cat, name="cat", scale=SCALE, translate=TRANSLATE)
    b = viewer.add_image(coffee, name="coffee", scale=SCALE, translate=TRANSLATE)
    return a, b


def make_widget(viewer, a, b, mask, **values):
    widget = BlendWidget(viewer)
    widget.image_a.value, widget.image_b.value = a, b
    widget.mask.value = mask
    for key, value in values.items():
        getattr(widget, key).value = value
    return widget


def test_labels_mask_any_label_or_one_label(viewer, qtbot, pair):
    a, b = pair
    labels = np.zeros(a.data.shape[:2], dtype=np.uint8)
    labels[:, :150] = 1
    labels[200:260, 200:260] = 2
    before = [a.data.copy(), b.data.copy(), labels.copy()]
    mask = viewer.add_labels(labels, name="mask", scale=SCALE, translate=TRANSLATE)
    widget = make_widget(viewer, a, b, mask, levels=4, auto_levels=False)
    (out,) = run_widget(qtbot, widget)
    assert out.name == "pyramid blend(cat, coffee)"
    assert out.rgb and out.data.dtype == np.uint8
    assert tuple(out.scale) == SCALE and tuple(out.translate) == TRANSLATE
    expected = npp.blend(a.data, b.data, labels != 0, 4, channel_axis=-1)
    np.testing.assert_array_equal(out.data, expected)

    widget.any_label.value = False
    widget.label_value.value = 2
    n_layers = len(viewer.layers)
    (again,) = run_widget(qtbot, widget)
    assert again is out and len(viewer.layers) == n_layers  # updated in place
    expected = npp.blend(a.data, b.data, labels == 2, 4, channel_axis=-1)
    np.testing.assert_array_equal(again.data, expected)
    for old, new in zip(before, [a.data, b.data, mask.data]):
        np.testing.assert_array_equal(old, new)


def test_shapes_mask_is_rasterised_where_it_is_drawn(viewer, qtbot, pair):
    a, b = pair
    # A rectangle over image pixels rows 40..120, cols 60..200, drawn in world
    # coordinates on a Shapes layer with its own (default) scale.
    corners = np.array([[40, 60], [40, 200], [120, 200], [120, 60]], float)
    world = corners * SCALE + TRANSLATE
    shapes = viewer.add_shapes([world], shape_type="rectangle", name="box")
    widget = make_widget(viewer, a, b, shapes, method="cut")
    (out,) = run_widget(qtbot, widget)
    assert out.name == "cut blend(cat, coffee)"
    np.testing.assert_array_equal(out.data[42:118, 62:198], a.data[42:118, 62:198])
    outside = np.ones(a.data.shape[:2], bool)
    outside[38:123, 58:203] = False
    np.testing.assert_array_equal(out.data[outside], b.data[outside])

    weights = mask_source_from_layer(shapes, source_from_layer(a)).data
    assert abs(weights.sum() - 80 * 140) <= 2 * (80 + 140)  # edges within a pixel


def test_grey_image_mask_is_scaled_to_unit_range(viewer, qtbot):
    img_a = RNG.random((96, 128), dtype=np.float32)
    img_b = RNG.random((96, 128), dtype=np.float32)
    ramp = np.tile(np.linspace(0, 255, 128, dtype=np.float32), (96, 1))
    a = viewer.add_image(img_a, name="a")
    b = viewer.add_image(img_b, name="b")
    soft = viewer.add_image(ramp, name="ramp")
    widget = make_widget(viewer, a, b, soft, method="feather", feather_width=8.0)
    (out,) = run_widget(qtbot, widget)
    assert out.name == "feather blend(a, b)" and not out.rgb
    expected = npp.feather_blend(img_a, img_b, ramp / 255, width=8.0)
    np.testing.assert_allclose(out.data, expected, atol=1e-5)
    np.testing.assert_array_equal(soft.data, ramp)  # the layer is not rescaled


def test_mask_octaves_overlay_the_mask(viewer, qtbot, pair):
    a, b = pair
    labels = np.zeros(a.data.shape[:2], dtype=np.int32)
    labels[:, :150] = 5
    mask = viewer.add_labels(labels, name="mask", scale=SCALE, translate=TRANSLATE)
    widget = make_widget(
        viewer, a, b, mask, levels=3, auto_levels=False, show_mask_octaves=True
    )
    out, *octaves = run_widget(qtbot, widget)
    assert [o.name for o in octaves] == [f"mask gaussian octave {k}" for k in range(3)]
    for k, octave in enumerate(octaves):
        assert octave.colormap.name == "gray"
        np.testing.assert_allclose(
            octave.data_to_world([3, 5]), a.data_to_world([3 * 2**k, 5 * 2**k])
        )
    np.testing.assert_allclose(
        octaves[-1].data, npp.gaussian_pyramid(labels != 0, 3)[-1]
    )


def test_bad_input_is_reported_and_changes_nothing(viewer, pair):
    """Each bad setup: no worker, an error that says what to do, no layer touched."""
    a, b = pair
    grid = a.data.shape[:2]
    kw = {"scale": SCALE, "translate": TRANSLATE}

    def labels(data):
        return viewer.add_labels(data, name="mask", **kw)

    cases = [  # (image B, mask, widget values, expected message) per bad setup
        (lambda: (b, labels(np.zeros(grid, np.uint8))), {}, "no painted pixels"),
        (
            lambda: (b, labels(np.ones(grid, np.uint8))),
            {"any_label": False, "label_value": 7},
            "no pixel with label 7",
        ),
        (lambda: (b, viewer.add_shapes(name="mask")), {}, "no shapes"),
        (
            lambda: (viewer.add_image(b.data[:200], **kw), labels(np.ones(grid, bool))),
            {},
            r"resize.*crop",
        ),
        (
            lambda: (
                viewer.add_image(b.data[..., 0], **kw),
                labels(np.ones(grid, bool)),
            ),
            {},
            "RGB.*grey",
        ),
        (lambda: (b, labels(np.ones((10, 10), np.uint8))), {}, "grid"),
        (
            lambda: (b, viewer.add_labels(np.ones(grid, np.uint8), name="mask")),
            {},
            r"elsewhere in the world .*scale \(1\.0, 1\.0\) vs \(2\.0, 2\.0\)",
        ),
    ]
    for make, values, message in cases:
        image_b, mask = make()
        before = {layer.name: np.copy(layer.data) for layer in viewer.layers}
        widget = make_widget(viewer, a, image_b, mask, **values)
        assert widget.run() is None  # refused before any worker starts
        assert widget.status.startswith("Error")
        assert re.search(message, widget.status), widget.status
        assert [layer.name for layer in viewer.layers] == list(before)
        for layer in viewer.layers:
            np.testing.assert_array_equal(np.asarray(layer.data), before[layer.name])
        for layer in {image_b, mask} - {b}:
            viewer.layers.remove(layer)


def test_cancel_adds_nothing(viewer, qtbot, pair):
    """Cancel between two pyramid levels: the job stops, no layer is added."""
    a, b = pair
    triangle = np.tri(*a.data.shape[:2], dtype=np.uint8)
    mask = viewer.add_labels(triangle, name="m", scale=SCALE, translate=TRANSLATE)
    widget = make_widget(viewer, a, b, mask)
    cancel_after_first_step(qtbot, widget, "pyramid step 1")
    assert [layer.name for layer in viewer.layers] == ["cat", "coffee", "m"]


def test_blend_from_the_menu_on_the_sample(viewer):
    """Plugins > napari-pyramids > Blend on File > Open Sample > Cat and coffee."""
    viewer.open_sample("napari-pyramids", "blend_pair")
    _, widget = viewer.window.add_plugin_dock_widget("napari-pyramids", "Blend")
    assert isinstance(widget, BlendWidget)
    widget.image_a.value = viewer.layers["cat"]
    widget.image_b.value = viewer.layers["coffee"]
    assert widget.mask.value is viewer.layers["blend mask"]  # Labels come first
    (out,) = widget.run(blocking=True)
    cat, coffee, mask = blend_pair_arrays()
    np.testing.assert_array_equal(
        out.data, npp.blend(cat, coffee, mask, channel_axis=-1)
    )
