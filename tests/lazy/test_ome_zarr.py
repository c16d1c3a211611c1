"""OME-Zarr writing and reading: exact levels, NGFF metadata, atomicity, bad input."""

import json
import os

import dask.array as da
import numpy as np
import pytest
import zarr

import napari_pyramids as npp
from napari_pyramids.lazy import napari_io
from napari_pyramids.lazy import ome_zarr as oz

RNG = np.random.default_rng(11)


def multiscales(path):
    attrs = zarr.open_group(path, mode="r").attrs.asdict()
    return attrs.get("ome", attrs)["multiscales"][0]


def test_float_round_trip_equals_in_memory_pyramid_and_metadata(tmp_path):
    img = RNG.random((83, 70), dtype=np.float32)
    before = img.copy()
    out = npp.write_ome_zarr(
        da.from_array(img, chunks=13),
        tmp_path / "a.ome.zarr",
        chunks=16,
        min_size=4,
        scale=(0.5, 0.25),
        translate=(10.0, -3.0),
        name="cells",
    )
    back = npp.read_ome_zarr(out)
    ref = npp.gaussian_pyramid(img, min_size=4)
    assert len(back.levels) == len(ref) == 5
    for got, want in zip(back.levels, ref):
        np.testing.assert_allclose(got.compute(), want, atol=1e-6)
    np.testing.assert_array_equal(img, before)
    assert back.axes == ("y", "x") and back.name == "cells"
    assert back.scale == (0.5, 0.25) and back.translate == (10.0, -3.0)
    # REDUCE keeps sample 2j: scale doubles per level, translation never moves
    for k, ds in enumerate(multiscales(out)["datasets"]):
        scale, shift = ds["coordinateTransformations"]
        assert scale["scale"] == [0.5 * 2**k, 0.25 * 2**k]
        assert shift["translation"] == [10.0, -3.0]
    assert sorted(os.listdir(tmp_path)) == ["a.ome.zarr"]  # no temporary left


def test_uint16_levels_keep_dtype_and_equal_in_memory_rounding(tmp_path):
    img = (RNG.random((130, 97)) * 60000).astype(np.uint16)
    z = zarr.create_array(
        tmp_path / "in.zarr", shape=img.shape, chunks=(40, 40), dtype=img.dtype
    )
    z[:] = img
    out = npp.write_ome_zarr(z, tmp_path / "b.zarr", levels=5, chunks=32)
    back = npp.read_ome_zarr(out)
    for got, want in zip(
        back.levels, npp.gaussian_pyramid(img, 5, preserve_dtype=True)
    ):
        got = got.compute()
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, want)  # exactly, not to rounding
    assert sorted(os.listdir(tmp_path)) == ["b.zarr", "in.zarr"]  # scratch removed


def test_small_blocks_store_the_in_memory_pyramid_exactly(tmp_path):
    # issue 17: with blocks <= 16 a 300x500 uint16 image came back 1 off at
    # pixels whose OpenCV result depended on where a block ended
    img = (np.random.default_rng(0).random((300, 500)) * 65535).astype(np.uint16)
    out = npp.write_ome_zarr(img, tmp_path / "s.zarr", levels=5, chunks=16)
    wanted = npp.gaussian_pyramid(img, 5, preserve_dtype=True)
    for got, want in zip(npp.read_ome_zarr(out).levels, wanted):
        np.testing.assert_array_equal(got.compute(), want)


@pytest.mark.parametrize("reduce_z", [False, True])
def test_volume_levels_and_z_scale(tmp_path, reduce_z):
    vol = RNG.random((9, 40, 35), dtype=np.float32)
    out = npp.write_ome_zarr(
        vol,
        tmp_path / "v.zarr",
        levels=3,
        chunks=16,
        reduce_z=reduce_z,
        scale=(2.0, 0.5, 0.5),
    )
    back = npp.read_ome_zarr(out)
    assert back.axes == ("z", "y", "x")
    ref = npp.gaussian_pyramid(vol, 3, reduce_z=reduce_z)
    for got, want in zip(back.levels, ref):
        np.testing.assert_allclose(got.compute(), want, atol=1e-6)
    last = multiscales(out)["datasets"][2]["coordinateTransformations"][0]["scale"]
    assert last == [8.0 if reduce_z else 2.0, 2.0, 2.0]


def test_rgb_is_stored_channel_first_and_read_as_channels(tmp_path):
    rgb = RNG.random((30, 26, 3), dtype=np.float32)
    out = npp.write_ome_zarr(
        rgb, tmp_path / "rgb.zarr", levels=3, channel_axis=-1, version="0.4"
    )
    back = npp.read_ome_zarr(out)
    assert back.axes == ("c", "y", "x")
    assert (out / ".zattrs").is_file()  # NGFF 0.4 is Zarr v2
    ref = npp.gaussian_pyramid(rgb, 3, channel_axis=-1)
    for got, want in zip(back.levels, ref):
        np.testing.assert_allclose(np.moveaxis(got.compute(), 0, -1), want, atol=1e-6)
    [(data, meta, kind)] = napari_io.read_pyramid(str(out))
    assert kind == "image" and meta["channel_axis"] == 0 and meta["scale"] == [1, 1]


def test_a_given_pyramid_is_written_as_is_and_a_wrong_one_refused(tmp_path):
    img = RNG.random((50, 41), dtype=np.float32)
    pyr = npp.gaussian_pyramid(img, 4)
    back = npp.read_ome_zarr(npp.write_ome_zarr(pyr, tmp_path / "p.zarr"))
    for got, want in zip(back.levels, pyr):
        np.testing.assert_array_equal(got.compute(), want)
    with pytest.raises(ValueError, match="level 2 has shape"):
        npp.write_ome_zarr([pyr[0], pyr[1], pyr[1]], tmp_path / "q.zarr")
    assert not (tmp_path / "q.zarr").exists()


def test_existing_path_is_refused_unless_overwrite(tmp_path):
    target = tmp_path / "x.zarr"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    img = RNG.random((20, 20), dtype=np.float32)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        npp.write_ome_zarr(img, target)
    assert (target / "keep.txt").read_text() == "mine"
    (target / "keep.txt").unlink()  # overwrite=True replaces only OME-Zarr images
    npp.write_ome_zarr(img, target, overwrite=True, levels=2)
    assert len(npp.read_ome_zarr(target).levels) == 2
    assert sorted(os.listdir(tmp_path)) == ["x.zarr"]


def test_unwritable_location_gets_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    img = RNG.random((20, 20), dtype=np.float32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        npp.write_ome_zarr(img, blocker / "out.zarr")
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            npp.write_ome_zarr(img, locked / "out.zarr")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("shape", [(30,), (2, 3, 20, 20)])
def test_not_2d_or_3d_is_refused(tmp_path, shape):
    with pytest.raises(ValueError, match=r"2-D \(y, x\) or 3-D"):
        npp.write_ome_zarr(np.zeros(shape, np.float32), tmp_path / "n.zarr")
    assert os.listdir(tmp_path) == []


def test_cancelled_write_leaves_nothing_and_keeps_the_old_store(tmp_path):
    target = tmp_path / "c.zarr"
    img = (RNG.random((200, 180)) * 1000).astype(np.uint16)
    npp.write_ome_zarr(img[:50, :50], target, levels=2)
    old = json.dumps(multiscales(target))
    writer = oz.iter_write_ome_zarr(img, target, overwrite=True, levels=4, chunks=32)
    done, total = next(writer)  # first band of level 0 is on disk
    assert 0 < done < total
    writer.close()  # what the widget's Cancel does
    assert sorted(os.listdir(tmp_path)) == ["c.zarr"]
    assert json.dumps(multiscales(target)) == old  # untouched, still complete
    assert npp.read_ome_zarr(target).levels[0].shape == (50, 50)


def test_failed_write_leaves_no_half_written_store(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(oz.lazy, "reduce_lazy", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        npp.write_ome_zarr(np.ones((40, 40), np.uint16), tmp_path / "f.zarr", levels=3)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "what",
    [
        RNG.random((300, 90), dtype=np.float32),
        RNG.random((70, 40, 3), dtype=np.float32),  # volume, z kept
        npp.gaussian_pyramid(RNG.random((40, 100, 90), dtype=np.float32), 3),
    ],
    ids=["image", "volume", "given pyramid"],
)
def test_progress_counts_every_band_once(tmp_path, what):
    writer = oz.iter_write_ome_zarr(what, tmp_path / "s.zarr", chunks=32)
    steps = list(writer)
    assert [d for d, _ in steps] == list(range(1, len(steps) + 1))
    assert all(t == len(steps) for _, t in steps)


def test_napari_reader_and_writer_round_trip(tmp_path):
    img = RNG.random((64, 48), dtype=np.float32)
    path = str(tmp_path / "layer.ome.zarr")
    attrs = {
        "name": "img",
        "scale": [2.0, 2.0],
        "translate": [5.0, 0.0],
        "multiscale": False,
        "rgb": False,
    }
    assert napari_io.write_pyramid(path, img, attrs) == [path]
    assert napari_io.get_reader(str(tmp_path)) is None  # a folder, but no image
    assert napari_io.get_reader(str(tmp_path / "nope.zarr")) is None
    reader = napari_io.get_reader(path)
    [(levels, meta, kind)] = reader(path)
    assert kind == "image" and meta["multiscale"] and meta["name"] == "img"
    assert meta["scale"] == [2.0, 2.0] and meta["translate"] == [5.0, 0.0]
    for got, want in zip(levels, npp.gaussian_pyramid(img)):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)


def test_huge_floats_are_stored_exactly_as_in_memory(tmp_path):
    # OpenCV overflows near the float maximum; where it does, the whole image
    # and each small block must be rescued alike (issue 17)
    img = np.zeros((24, 60), np.float32)
    img[10:14, 20:30] = 3e37
    img[::5, ::7] = -1e38
    out = npp.write_ome_zarr(img, tmp_path / "h.zarr", levels=3, chunks=2)
    for got, want in zip(npp.read_ome_zarr(out).levels, npp.gaussian_pyramid(img, 3)):
        assert np.isfinite(want).all()
        np.testing.assert_array_equal(got.compute(), want)
