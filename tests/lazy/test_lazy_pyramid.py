"""Lazy (dask / zarr) pyramids equal the in-memory engine, chunk borders included."""

import dask.array as da
import numpy as np
import pytest
import zarr

import napari_pyramids as npp
from napari_pyramids.lazy import pyramid as lazy

RNG = np.random.default_rng(7)


def assert_levels_close(lazy_levels, ref_levels, atol=1e-5):
    assert len(lazy_levels) == len(ref_levels)
    for k, (ours, ref) in enumerate(zip(lazy_levels, ref_levels)):
        assert isinstance(ours, da.Array), f"level {k} is not lazy"
        got = ours.compute()
        assert got.shape == ref.shape and got.dtype == ref.dtype, k
        np.testing.assert_allclose(got, ref, atol=atol, err_msg=f"level {k}")


@pytest.mark.parametrize(
    "shape, side, input_chunks",
    [
        ((101, 77), 27, 7),  # odd shape, odd requested side, odd input chunks
        ((64, 64), 16, 16),
        ((33, 47), 11, (4, 9)),
        ((9, 7), 2, 3),  # smallest blocks: the overlap is a whole block
        ((5, 5), 2, 2),
    ],
)
def test_gaussian_and_laplacian_equal_in_memory_at_chunk_borders(
    shape, side, input_chunks
):
    img = RNG.random(shape, dtype=np.float32)
    arr = da.from_array(img, chunks=input_chunks)
    kw = dict(levels=min(4, npp.core.pyramid.max_levels(shape, (0, 1))))
    gauss = lazy.gaussian_pyramid(arr, chunks=side, **kw)
    assert_levels_close(gauss, npp.gaussian_pyramid(img, **kw))
    assert max(len(c) for c in gauss[0].chunks) > 1  # chunk borders are exercised
    lap = lazy.laplacian_pyramid(arr, chunks=side, **kw)
    assert_levels_close(lap, npp.laplacian_pyramid(img, **kw))
    np.testing.assert_allclose(npp.reconstruct(da.compute(*lap)), img, atol=1e-5)


@pytest.mark.parametrize(
    "shape, kwargs, side",
    [
        ((5, 20, 17), dict(), (9, 7)),  # volume, z kept, z chunked by the input
        ((11, 13, 17), dict(reduce_z=True), (5, 7, 9)),
        ((2, 21, 19, 3), dict(channel_axis=-1), 9),  # frames and colour
        ((3, 20, 23), dict(channel_axis=0), 9),
    ],
)
def test_volumes_frames_and_channels_equal_in_memory(shape, kwargs, side):
    img = RNG.random(shape, dtype=np.float32)
    arr = da.from_array(img, chunks=3)
    for build in ("gaussian_pyramid", "laplacian_pyramid"):
        ours = getattr(lazy, build)(arr, 3, chunks=side, **kwargs)
        assert_levels_close(ours, getattr(npp, build)(img, 3, **kwargs))


def test_core_functions_dispatch_zarr_and_dask_to_the_lazy_engine(tmp_path):
    img = (RNG.random((70, 90)) * 4000).astype(np.uint16)
    z = zarr.create_array(
        tmp_path / "in.zarr", shape=img.shape, chunks=(25, 25), dtype=img.dtype
    )
    z[:] = img
    ref = npp.gaussian_pyramid(img, 4)
    assert_levels_close(npp.gaussian_pyramid(z, 4), ref)
    assert_levels_close(
        npp.laplacian_pyramid(da.asarray(img), 4), npp.laplacian_pyramid(img, 4)
    )


def test_preserve_dtype_rounds_like_the_in_memory_engine():
    img = (RNG.random((60, 52)) * 60000).astype(np.uint16)
    ours = lazy.gaussian_pyramid(
        da.from_array(img, chunks=9), 4, chunks=10, preserve_dtype=True
    )
    ref = npp.gaussian_pyramid(img, 4, preserve_dtype=True)
    floats = npp.gaussian_pyramid(img, 4)
    assert ours[0].dtype == np.uint16
    for got, want, exact in zip(ours, ref, floats):
        got = got.compute()
        assert got.dtype == np.uint16
        diff = np.abs(got.astype(int) - want.astype(int))
        # float32 round-off may only flip values sitting on .5
        near_half = np.abs(exact - np.floor(exact) - 0.5) < 1e-2
        assert diff.max() <= 1 and not (diff[~near_half]).any()


def test_building_the_pyramid_computes_nothing_and_leaves_input_alone():
    calls = []

    def source_block(block):
        calls.append(1)
        return block

    img = RNG.random((50, 50), dtype=np.float32)
    before = img.copy()
    arr = da.from_array(img, chunks=10).map_blocks(source_block, meta=img[:0, :0])
    levels = lazy.laplacian_pyramid(arr, 3, chunks=10)
    assert calls == []
    da.compute(*levels)
    assert calls  # now it ran
    np.testing.assert_array_equal(img, before)


def test_level_chunks_are_even_blocks_of_the_same_side_at_every_level():
    arr = da.zeros((1000, 999), chunks=(333, 101), dtype=np.float32)
    levels = lazy.gaussian_pyramid(arr, 5, chunks=128)
    for level in levels:
        for axis_chunks, n in zip(level.chunks, level.shape):
            assert all(c == 128 for c in axis_chunks[:-1])
            assert axis_chunks[-1] <= 129 and sum(axis_chunks) == n
    assert levels[-1].numblocks == (1, 1)  # 63 x 63: one block, not 0.5 x 0.5
    # default: the input's side when sensible (>= 256), else about 1M elements
    assert lazy.gaussian_pyramid(da.zeros((3000, 3000), chunks=512), 2)[
        0
    ].chunksize == (
        512,
        512,
    )
    assert lazy.gaussian_pyramid(arr, 2)[0].chunksize == (334, 999)


@pytest.mark.parametrize(
    "image, kwargs, error, match",
    [
        (da.zeros(10), {}, ValueError, "2 spatial axes"),
        (da.zeros((4, 4), dtype=complex), {}, TypeError, "real numbers"),
        (da.zeros((0, 4)), {}, ValueError, "empty"),
        (da.zeros((8, 8)), dict(chunks=(4, 4, 4)), ValueError, "one side per reduced"),
        (da.zeros((8, 8)), dict(chunks=1), ValueError, "at least 2"),
        (da.zeros((8, 8)), dict(levels=9), ValueError, "levels=9"),
    ],
)
def test_bad_input_gets_a_clear_error(image, kwargs, error, match):
    with pytest.raises(error, match=match):
        lazy.gaussian_pyramid(image, **kwargs)
