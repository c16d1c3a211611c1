"""The shared rules behind every entry point: the cast back to an integer dtype,
the ``channel_axis`` check and the finite check (issue 17)."""

import dask.array as da
import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.core.pyramid import cast_like

INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32]
WIDE_INTS = [np.int32, np.uint32, np.int64, np.uint64]


# ------------------------------------------------------------ the cast back
@pytest.mark.parametrize("dtype", INT_DTYPES + WIDE_INTS)
def test_cast_clips_at_the_exact_integer_bounds(dtype):
    info = np.iinfo(dtype)
    level = np.array([-1e30, float(info.min), float(info.max), 1e30, 2.5, 3.5])
    for work in (np.float32, np.float64):
        out = cast_like(level.astype(work), np.dtype(dtype))
        assert out.dtype == dtype
        assert out[0] == out[1] == info.min and out[2] == out[3] == info.max
        assert list(out[4:]) == [2, 4]  # rounded half to even, as np.rint


@pytest.mark.parametrize("dtype", WIDE_INTS)
@pytest.mark.parametrize("end", ["min", "max"])
def test_integers_at_the_ends_of_their_range_never_wrap(dtype, end):
    value = getattr(np.iinfo(dtype), end)
    x = np.full((16, 16), value, dtype)
    mask = np.zeros((16, 16), bool)
    mask[:, :8] = True
    results = {
        "pyramid": npp.gaussian_pyramid(x, 3, preserve_dtype=True)[1:],
        "blend": [npp.blend(x, x, mask, 3)],
        "feather_blend": [npp.feather_blend(x, x, mask, width=4)],
        "lazy pyramid": [
            lv.compute()
            for lv in npp.gaussian_pyramid(da.from_array(x), 3, preserve_dtype=True)
        ][1:],
    }
    for what, levels in results.items():
        for level in levels:
            assert level.dtype == dtype, what
            assert (level == value).all(), f"{what}: {level.ravel()[:3]}"


@pytest.mark.parametrize("dtype", WIDE_INTS)
def test_written_levels_never_wrap(tmp_path, dtype):
    value = np.iinfo(dtype).max
    x = np.full((16, 16), value, dtype)
    back = npp.read_ome_zarr(npp.write_ome_zarr(x, tmp_path / "w.zarr", levels=3))
    for level in back.levels:
        got = level.compute()
        assert got.dtype == dtype and (got == value).all()


# ------------------------------------------------------------- channel_axis
def _entry_points(channel_axis):
    """Every public function that takes channel_axis, on a small RGB image."""
    rgb = np.zeros((16, 16, 3), np.float32)
    mask = np.zeros((16, 16), bool)
    return {
        "gaussian_pyramid": lambda: npp.gaussian_pyramid(
            rgb, channel_axis=channel_axis
        ),
        "laplacian_pyramid": lambda: npp.laplacian_pyramid(
            rgb, channel_axis=channel_axis
        ),
        "reduce": lambda: npp.reduce(rgb, channel_axis=channel_axis),
        "blend": lambda: npp.blend(rgb, rgb, mask, channel_axis=channel_axis),
        "feather_blend": lambda: npp.feather_blend(
            rgb, rgb, mask, channel_axis=channel_axis
        ),
        "cut_blend": lambda: npp.cut_blend(rgb, rgb, mask, channel_axis=channel_axis),
        "find_template": lambda: npp.find_template(
            rgb, rgb[:8, :8], channel_axis=channel_axis
        ),
        "lazy pyramid": lambda: npp.gaussian_pyramid(
            da.from_array(rgb), channel_axis=channel_axis
        ),
    }


@pytest.mark.parametrize("bad", [1.5, "x", True, [2]], ids=repr)
def test_a_channel_axis_that_is_not_a_whole_number_is_refused_everywhere(bad):
    for what, call in _entry_points(bad).items():
        with pytest.raises(TypeError, match="channel_axis must be a whole number"):
            call()
            pytest.fail(f"{what} accepted channel_axis={bad!r}")


def test_numpy_integers_are_channel_axes():
    assert npp.reduce(np.zeros((8, 8, 3)), channel_axis=np.int64(-1)).shape == (4, 4, 3)


# ---------------------------------------------------------- NaN everywhere
def _nan_entry_points():
    img = np.ones((16, 16), np.float32)
    img[3, 4] = np.nan
    ok = np.ones((16, 16), np.float32)
    mask = np.zeros((16, 16), bool)
    mask[:, :8] = True
    bands = npp.laplacian_pyramid(ok, 3)
    return {
        "reduce": lambda: npp.reduce(img),
        "expand": lambda: npp.expand(img[:8, :8], (16, 16)),
        "reconstruct": lambda: npp.reconstruct([img, *bands[1:]]),
        "equal_size_levels": lambda: npp.equal_size_levels([img, *bands[1:]]),
        "gaussian_pyramid": lambda: npp.gaussian_pyramid(img),
        "blend": lambda: npp.blend(img, ok, mask),
        "feather_blend": lambda: npp.feather_blend(ok, img, mask),
        "cut_blend": lambda: npp.cut_blend(img, ok, mask),
        "find_template": lambda: npp.find_template(img, np.eye(5, dtype=np.float32)),
    }


@pytest.mark.parametrize("what", sorted(_nan_entry_points()))
def test_nan_is_refused_by_every_public_function(what):
    with pytest.raises(ValueError, match="NaN or infinite"):
        _nan_entry_points()[what]()


# ------------------------------------------------------------ other dtypes
def test_complex_levels_are_refused_not_truncated():
    bands = npp.laplacian_pyramid(np.ones((16, 16)), 3)
    bands[0] = bands[0] + 1j
    with pytest.raises(TypeError, match="real numbers"):
        npp.reconstruct(bands)
    with pytest.raises(TypeError, match="real numbers"):
        npp.equal_size_levels(bands)


def test_masked_arrays_are_refused_rather_than_their_mask_ignored():
    img = np.ma.masked_array(np.ones((16, 16)), mask=np.eye(16, dtype=bool))
    with pytest.raises(ValueError, match="masked"):
        npp.gaussian_pyramid(img)
    with pytest.raises(ValueError, match="masked"):
        npp.write_ome_zarr(img, "never-written.zarr")
    plain = np.ma.masked_array(np.ones((16, 16)))  # nothing masked: just data
    assert len(npp.gaussian_pyramid(plain, 2)) == 2


def test_bool_images_work_in_memory_lazily_and_in_the_writer(tmp_path):
    img = np.eye(16, dtype=bool)
    want = npp.gaussian_pyramid(img, 2)
    got = npp.gaussian_pyramid(da.from_array(img), 2)
    np.testing.assert_array_equal(got[1].compute(), want[1])
    back = npp.read_ome_zarr(npp.write_ome_zarr(img, tmp_path / "b.zarr", levels=2))
    np.testing.assert_array_equal(back.levels[1].compute(), want[1])


def test_object_dtype_to_the_writer_gets_the_dtype_message(tmp_path):
    img = np.empty((16, 16), dtype=object)
    with pytest.raises(TypeError, match="real numbers"):
        npp.write_ome_zarr(img, tmp_path / "o.zarr")


# ----------------------------------------------------------- feather width
@pytest.mark.parametrize("width", [np.inf, np.nan, -1.0])
def test_a_feather_width_that_is_not_finite_gets_a_clear_error(width):
    m = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="width must be a finite number"):
        npp.feather_blend(m, m + 1, m > 0, width=width)


def test_a_huge_feather_width_is_capped_at_what_the_image_can_use():
    a = np.zeros((64, 64), np.float32)
    b = np.ones((64, 64), np.float32)
    mask = np.zeros((64, 64), bool)
    mask[:, :20] = True
    widest = npp.feather_blend(a, b, mask, width=8 * 64)
    huge = npp.feather_blend(a, b, mask, width=1e9)  # tried 15 GiB before
    np.testing.assert_array_equal(huge, widest)
    np.testing.assert_allclose(huge, 1 - mask.mean(), atol=1e-2)  # nearly flat


# ------------------------------------------------------------- huge floats
@pytest.mark.parametrize("dtype, value", [(np.float32, 1e37), (np.float64, 1e307)])
def test_huge_floats_do_not_overflow_in_the_opencv_backend(dtype, value):
    x = np.full((32, 32), value, dtype)
    x[::3, ::5] = -value  # signed, with texture
    numpy_levels = npp.gaussian_pyramid(x, 4, backend="numpy")
    for backend in ("auto", "opencv"):
        gauss = npp.gaussian_pyramid(x, 4, backend=backend)
        for got, want in zip(gauss, numpy_levels):
            assert np.isfinite(got).all()
            np.testing.assert_allclose(got, want, rtol=1e-5)
        bands = npp.laplacian_pyramid(x, 4, backend=backend)
        assert all(np.isfinite(b).all() for b in bands)
        np.testing.assert_allclose(npp.reconstruct(bands), x, rtol=1e-4)
        small = npp.reduce(x, backend=backend)
        np.testing.assert_allclose(small, numpy_levels[1], rtol=1e-5)
        assert np.isfinite(npp.expand(small, x.shape, backend=backend)).all()
        lazy = npp.gaussian_pyramid(da.from_array(x, chunks=16), 3, backend=backend)
        np.testing.assert_allclose(lazy[2].compute(), numpy_levels[2], rtol=1e-5)
    mask = np.zeros((32, 32), bool)
    mask[:, :16] = True
    out = npp.blend(x, x / 2, mask, 3)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, :4], x[:, :4], rtol=1e-3)


def test_a_result_beyond_the_float_range_says_so():
    big = np.finfo(np.float32).max
    a = np.full((16, 16), big, np.float32)
    mask = np.zeros((16, 16), bool)
    mask[:, :8] = True
    with pytest.raises(ValueError, match="overflows float32.*use float64"):
        npp.blend(a, -a, mask, 2)  # a - b is beyond float32


def test_a_laplacian_band_beyond_the_float_range_says_so():
    big = np.finfo(np.float32).max
    x = np.full((16, 16), -big, np.float32)
    x[::2, ::2] = big  # G_0 - EXPAND(G_1) reaches about 1.5 x the float maximum
    with pytest.raises(ValueError, match="overflows float32"):
        npp.laplacian_pyramid(x, 2)


def test_nan_is_refused_even_when_the_mask_selects_one_image():
    img = np.ones((16, 16), np.float32)
    img[2, 2] = np.nan
    everywhere = np.ones((16, 16), bool)
    for blend in (npp.blend, npp.feather_blend):
        with pytest.raises(ValueError, match="image_a contains 1 NaN"):
            blend(img, img * 0, everywhere)


def test_feather_blend_of_images_at_opposite_float_extremes():
    big = np.finfo(np.float32).max
    a = np.full((16, 16), big, np.float32)
    mask = np.zeros((16, 16), bool)
    mask[:, :8] = True
    out = npp.feather_blend(a, -a, mask, width=4)  # A - B is beyond float32
    assert np.isfinite(out).all()
    assert out[0, 0] == pytest.approx(big, rel=1e-3)
    assert out[0, -1] == pytest.approx(-big, rel=1e-3)


def test_a_lazy_pyramid_raises_when_the_block_holding_nan_is_computed():
    img = np.ones((64, 64), np.float32)
    img[40, 40] = np.nan
    levels = npp.gaussian_pyramid(da.from_array(img, chunks=32), 2)  # lazy: no scan
    with pytest.raises(ValueError, match="NaN or infinite"):
        levels[1].compute()
