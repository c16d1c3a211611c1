"""The Pyramid widget and add_pyramid in a real napari viewer."""

import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.widgets.pyramid import PyramidWidget
from widget_helpers import cancel_after_first_step, run_widget

RNG = np.random.default_rng(7)


@pytest.mark.parametrize(
    "data, rgb",
    [
        (RNG.random((96, 80), dtype=np.float32), False),
        (RNG.integers(0, 255, (64, 70, 3), dtype=np.uint8), True),
        (RNG.random((6, 40, 48), dtype=np.float32), False),
    ],
)
def test_octaves_overlay_the_source_in_world_coordinates(viewer, qtbot, data, rgb):
    plane = data.ndim == 2 or rgb
    src = viewer.add_image(
        data,
        name="img",
        rgb=rgb,
        scale=(0.5, 2.0) if plane else (3.0, 0.5, 2.0),
        translate=(10.0, -4.0) if plane else (0.0, 10.0, -4.0),
    )
    before = data.copy()
    widget = PyramidWidget(viewer)
    widget.image.value = src
    widget.auto_levels.value = False
    widget.levels.value = 3
    layers = run_widget(qtbot, widget)
    # octave 0 is the image itself and is not added again
    assert [lyr.name for lyr in layers] == [
        "img gaussian octave 1",
        "img gaussian octave 2",
    ]
    for k, layer in enumerate(layers, start=1):
        assert layer.rgb == rgb
        j = np.array([3, 5])
        lead = [] if plane else [2]
        octave_px = np.array(lead + list(j), float)
        source_px = np.array(lead + list(j * 2**k), float)
        np.testing.assert_allclose(
            layer.data_to_world(octave_px), src.data_to_world(source_px)
        )
    np.testing.assert_array_equal(src.data, before)


def test_laplacian_octaves_use_diverging_symmetric_display(viewer, qtbot):
    src = viewer.add_image(RNG.random((64, 64), dtype=np.float32), name="noise")
    widget = PyramidWidget(viewer)
    widget.kind.value = "laplacian"
    widget.auto_levels.value = False
    widget.levels.value = 4
    layers = run_widget(qtbot, widget)
    assert layers[-1].name == "noise residual octave 3"
    for band in layers[:-1]:
        lo, hi = band.contrast_limits
        assert lo == pytest.approx(-hi) and hi > 0
        assert band.colormap.name == "PiYG"
    rebuilt = npp.reconstruct([lyr.data for lyr in layers])
    np.testing.assert_allclose(rebuilt, src.data, atol=1e-5)


def test_multiscale_and_stack_outputs(viewer, qtbot):
    src = viewer.add_image(RNG.random((128, 96), dtype=np.float32), name="img")
    widget = PyramidWidget(viewer)
    widget.image.value = src
    widget.output.value = "multiscale"
    assert "#6320" in widget._note.value  # honest about napari's rendering
    (ms,) = run_widget(qtbot, widget)
    assert ms.multiscale and ms.name == "img gaussian pyramid"
    assert [lvl.shape for lvl in ms.data] == [
        g.shape for g in npp.gaussian_pyramid(src.data)
    ]
    widget.output.value = "stack"
    (stack,) = run_widget(qtbot, widget)
    assert stack.data.shape == (len(ms.data), 128, 96)
    assert stack.name == "img gaussian stack"
    np.testing.assert_array_equal(stack.data[0], src.data)


def test_rerun_updates_layers_in_place(viewer, qtbot):
    viewer.add_image(RNG.random((64, 64), dtype=np.float32), name="img")
    widget = PyramidWidget(viewer)
    widget.auto_levels.value = False
    widget.levels.value = 3
    first = run_widget(qtbot, widget)
    n_layers = len(viewer.layers)
    second = run_widget(qtbot, widget)
    assert len(viewer.layers) == n_layers
    assert all(a is b for a, b in zip(first, second))


def test_volume_reduce_z(viewer, qtbot):
    src = viewer.add_image(RNG.random((16, 32, 32), dtype=np.float32), name="vol")
    widget = PyramidWidget(viewer)
    widget.image.value = src
    widget.reduce_z.value = True
    widget.auto_levels.value = False
    widget.levels.value = 2
    layers = run_widget(qtbot, widget)
    assert layers[0].data.shape == (8, 16, 16)
    assert tuple(layers[0].scale) == (2.0, 2.0, 2.0)


def test_bad_settings_notify_and_add_nothing(viewer, qtbot, monkeypatch):
    viewer.add_image(RNG.random((16, 16), dtype=np.float32), name="small")
    widget = PyramidWidget(viewer)
    widget.auto_levels.value = False
    widget.levels.value = 12
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_error", lambda msg: shown.append(msg)
    )
    assert widget.run() is None
    assert "at most 5 levels" in shown[0] and "at most 5 levels" in widget.status
    assert len(viewer.layers) == 1


def test_nan_image_reports_error_from_worker(viewer, qtbot, monkeypatch):
    data = RNG.random((32, 32), dtype=np.float32)
    data[3, 3] = np.nan
    viewer.add_image(data, name="nan")
    widget = PyramidWidget(viewer)
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_error", lambda msg: shown.append(msg)
    )
    run_widget(qtbot, widget)
    assert any("NaN" in msg for msg in shown)
    assert len(viewer.layers) == 1


def test_cancel_adds_nothing(viewer, qtbot):
    """Cancel between two octaves: the job stops at its next yield, adds nothing."""
    viewer.add_image(RNG.random((64, 64), dtype=np.float32), name="img")
    widget = PyramidWidget(viewer)
    cancel_after_first_step(qtbot, widget, "octave 0")
    assert [lyr.name for lyr in viewer.layers] == ["img"]


def test_gaussian_octaves_keep_integer_dtype_unless_asked(viewer, qtbot):
    src = viewer.add_image(RNG.integers(0, 255, (64, 64), dtype=np.uint8), name="u8")
    widget = PyramidWidget(viewer)
    widget.auto_levels.value = False
    widget.levels.value = 3
    assert run_widget(qtbot, widget)[0].data.dtype == np.uint8
    assert widget.keep_dtype in widget  # the user can see and untick it
    widget.keep_dtype.value = False
    octave1 = run_widget(qtbot, widget)[0]
    assert octave1.data.dtype == np.float32
    np.testing.assert_allclose(octave1.data, npp.reduce(src.data), atol=1e-4)


def test_add_pyramid_from_the_console(viewer):
    viewer.add_image(RNG.random((64, 48, 3), dtype=np.float32), name="rgb", rgb=True)
    layers = npp.add_pyramid(viewer, "rgb", kind="laplacian", levels=3)
    assert [lyr.name for lyr in layers] == [
        "rgb laplacian octave 0",
        "rgb laplacian octave 1",
        "rgb residual octave 2",
    ]
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        npp.add_pyramid(viewer, "nope")


def test_manifest_widget_and_samples_load(viewer):
    import npe2

    pm = npe2.PluginManager.instance()
    manifest = pm.get_manifest("napari-pyramids")
    assert "Pyramid" in [w.display_name for w in manifest.contributions.widgets]
    dock, widget = viewer.window.add_plugin_dock_widget("napari-pyramids", "Pyramid")
    assert isinstance(widget, PyramidWidget)
    for key in [s.key for s in manifest.contributions.sample_data]:
        added = viewer.open_sample("napari-pyramids", key)  # a sample may hold several
        assert added and all(layer in viewer.layers for layer in added), key


def test_laplacian_stack_slices_each_fill_the_contrast_range(viewer, qtbot):
    viewer.open_sample("napari-pyramids", "astronaut")
    widget = PyramidWidget(viewer)
    widget.kind.value = "laplacian"
    widget.output.value = "stack"
    (stack,) = run_widget(qtbot, widget)
    _, top = stack.contrast_limits
    for k, plane in enumerate(stack.data):
        spread = np.percentile(np.abs(plane), 99)
        assert 0.3 * top < spread <= 1.01 * top, k  # no flat grey slice
    source = viewer.layers["astronaut"].data
    assert viewer.layers["astronaut"].data is source  # the image is untouched


def test_levels_box_shows_the_octaves_all_octaves_makes(viewer, qtbot):
    viewer.open_sample("napari-pyramids", "astronaut")  # 512 px: 512 ... 8 px
    widget = PyramidWidget(viewer)
    assert widget.auto_levels.value and not widget.levels.enabled
    assert widget.levels.value == 7
    widget.kind.value = "laplacian"
    assert len(run_widget(qtbot, widget)) == 7
    assert "REDUCE" in widget._note.value  # why coarse octaves overhang the edge
