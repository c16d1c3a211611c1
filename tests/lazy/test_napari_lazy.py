"""Out-of-core data in a real viewer: the Pyramid widget and the OME-Zarr reader."""

import dask.array as da
import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.actions import pyramid
from napari_pyramids.actions.pyramid import PyramidSettings
from napari_pyramids.layers import source_from_layer
from napari_pyramids.lazy import napari_io
from napari_pyramids.widgets.pyramid import PyramidWidget

RNG = np.random.default_rng(5)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_widget_builds_a_lazy_multiscale_layer_for_dask_data(viewer, qtbot):
    img = RNG.random((300, 260), dtype=np.float32)
    src = viewer.add_image(da.from_array(img, chunks=64), name="big", scale=(2, 2))
    widget = PyramidWidget(viewer)
    widget.image.value = src
    assert widget.output.value == "multiscale" and not widget.output.enabled
    widget.output.value = "octaves"  # the widget keeps it multiscale ...
    assert widget.output.value == "multiscale"
    octaves = PyramidSettings(output="octaves")  # ... and the job refuses others
    with pytest.raises(ValueError, match="out of core"):
        pyramid.run(source_from_layer(src), octaves)
    widget.auto_levels.value = False
    widget.levels.value = 4
    worker = widget.run()
    assert worker is not None, widget.status
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    [layer] = widget.last_layers
    assert layer.multiscale and layer.name == "big gaussian pyramid"
    assert all(isinstance(level, da.Array) for level in layer.data)
    for got, want in zip(layer.data, npp.gaussian_pyramid(img, 4)):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)
    np.testing.assert_allclose(layer.scale, (2, 2))


def test_reader_opens_what_the_writer_wrote_as_one_aligned_multiscale_layer(
    viewer, tmp_path
):
    img = (RNG.random((256, 200)) * 4000).astype(np.uint16)
    path = npp.write_ome_zarr(
        img, tmp_path / "scan.ome.zarr", levels=4, scale=(0.5, 0.5), translate=(3, 1)
    )
    layers = viewer.open(str(path), plugin="napari-pyramids")
    assert len(layers) == 1 and len(viewer.layers) == 1
    [layer] = layers
    assert layer.multiscale and len(layer.data) == 4
    ref = npp.gaussian_pyramid(img, 4, preserve_dtype=True)
    for got, want in zip(layer.data, ref):
        assert abs(np.asarray(got).astype(int) - want.astype(int)).max() <= 1
    np.testing.assert_allclose(layer.scale, (0.5, 0.5))
    np.testing.assert_allclose(layer.translate, (3, 1))
    # levels are exact halvings: napari's level k covers the same world extent
    np.testing.assert_allclose(layer.downsample_factors, [[2**k] * 2 for k in range(4)])
    # a reader that is not ours-shaped declines
    assert napari_io.get_reader(str(tmp_path)) is None
