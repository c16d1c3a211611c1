"""Property: the OME-Zarr writer stores exactly the in-memory pyramid, bit for
bit, whatever the dtype (integer extremes included), shape and block size."""

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import napari_pyramids as npp

INTS = [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64]
INTS += [np.uint64]
FLOATS = [np.float32, np.float64]


def elements(dtype):
    """Every value of an integer dtype; floats up to a quarter of the largest."""
    if np.issubdtype(dtype, np.integer):
        return hnp.from_dtype(np.dtype(dtype))
    big = float(np.finfo(dtype).max) / 4
    width = 32 if dtype == np.float32 else 64
    return st.floats(-big, big, width=width, allow_nan=False)


@st.composite
def images(draw):
    dtype = draw(st.sampled_from(INTS + FLOATS))
    shape = draw(st.tuples(st.integers(9, 48), st.integers(9, 72)))
    return draw(hnp.arrays(dtype, shape, elements=elements(dtype)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    image=images(), chunks=st.integers(2, 24), version=st.sampled_from(["0.4", "0.5"])
)
def test_written_levels_equal_the_in_memory_pyramid_bit_for_bit(image, chunks, version):
    before = image.copy()
    with tempfile.TemporaryDirectory() as tmp:
        path = npp.write_ome_zarr(
            image, Path(tmp) / "p.zarr", levels=3, chunks=chunks, version=version
        )
        stored = [level.compute() for level in npp.read_ome_zarr(path).levels]
    wanted = npp.gaussian_pyramid(image, 3, preserve_dtype=True)
    for k, (got, want) in enumerate(zip(stored, wanted)):
        assert got.dtype == want.dtype == image.dtype
        np.testing.assert_array_equal(got, want, err_msg=f"level {k}")
    np.testing.assert_array_equal(image, before)
