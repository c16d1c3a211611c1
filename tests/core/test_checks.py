"""The shared rules behind every entry point: the cast back to an integer dtype,
the ``channel_axis`` check and the finite check (issue 17)."""

import dask.array as da
import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.core.pyramid import _cast_like

INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32]
WIDE_INTS = [np.int32, np.uint32, np.int64, np.uint64]


# ------------------------------------------------------------ the cast back
@pytest.mark.parametrize("dtype", INT_DTYPES + WIDE_INTS)
def test_cast_clips_at_the_exact_integer_bounds(dtype):
    info = np.iinfo(dtype)
    level = np.array([-1e30, float(info.min), float(info.max), 1e30, 2.5, 3.5])
    for work in (np.float32, np.float64):
        out = _cast_like(level.astype(work), np.dtype(dtype))
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
