"""Properties over every dtype, integer extremes and huge floats included
(issue 17): pyramids and blends stay in range, never wrap, never overflow."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import napari_pyramids as npp

INTS = [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64]
DTYPES = [*INTS, np.uint64, np.float32, np.float64]
SETTINGS = settings(max_examples=30, deadline=None)


def elements(dtype):
    """Every value of an integer dtype; floats up to a quarter of the largest
    (beyond that a blend's A - B or a Laplacian band leaves the float range)."""
    if np.issubdtype(dtype, np.integer):
        return hnp.from_dtype(np.dtype(dtype))
    big = float(np.finfo(dtype).max) / 4
    return st.floats(-big, big, width=np.dtype(dtype).itemsize * 8)


@st.composite
def images(draw, count=1):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.tuples(st.integers(2, 24), st.integers(2, 24)))
    return [
        draw(hnp.arrays(dtype, shape, elements=elements(dtype))) for _ in range(count)
    ]


def masks(shape):
    return hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32))


def in_range(result, *images):
    """``result`` lies within the images' range, widened by the float round-off
    of the precision the work is done in (float32, or float64)."""
    work = np.float64 if result.dtype == np.float64 else np.float32
    lo = min(float(im.min()) for im in images)
    hi = max(float(im.max()) for im in images)
    slack = (hi - lo) * 4 * float(np.finfo(work).eps) + abs(lo) * 1e-6
    values = result.astype(np.float64)
    return values.min() >= lo - slack - 1 and values.max() <= hi + slack + 1


@SETTINGS
@given(data=st.data(), imgs=images())
def test_gaussian_levels_keep_the_dtype_and_stay_in_the_input_range(data, imgs):
    [img] = imgs
    before = img.copy()
    n = data.draw(st.integers(1, npp.core.pyramid.max_levels(img.shape, (0, 1))))
    backend = data.draw(st.sampled_from(["auto", "numpy"]))
    for level in npp.gaussian_pyramid(img, n, preserve_dtype=True, backend=backend):
        assert level.dtype == img.dtype
        assert in_range(level, img)  # a wrap-around lands at the other end
    bands = npp.laplacian_pyramid(img, n, backend=backend)
    assert all(np.isfinite(band).all() for band in bands)
    np.testing.assert_array_equal(img, before)


@SETTINGS
@given(data=st.data(), imgs=images(count=2))
def test_blends_stay_finite_in_dtype_and_near_the_float64_blend(data, imgs):
    a, b = imgs
    mask = data.draw(masks(a.shape))
    levels = data.draw(st.integers(1, npp.core.pyramid.max_levels(a.shape, (0, 1))))
    wide = [x.astype(np.float64) for x in (a, b)]
    for blend, kwargs in (
        (npp.blend, dict(levels=levels)),
        (npp.feather_blend, dict(width=data.draw(st.floats(0, 50)))),
    ):
        got = blend(a, b, mask, **kwargs)
        assert got.dtype == a.dtype and np.isfinite(got.astype(np.float64)).all()
        want = blend(*wide, mask, **kwargs)
        if np.issubdtype(a.dtype, np.integer):  # the float blend, as the dtype holds it
            info = np.iinfo(a.dtype)
            want = np.clip(want, float(info.min), float(info.max))
        scale = max(float(np.abs(w).max()) for w in wide)
        tol = 1e-4 * scale + (1 if np.issubdtype(a.dtype, np.integer) else 0)
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=tol)


@SETTINGS
@given(imgs=images(), data=st.data())
def test_blending_an_image_with_itself_gives_it_back_exactly(imgs, data):
    [img] = imgs
    if img.dtype.itemsize == 8 and np.issubdtype(img.dtype, np.integer):
        lo = max(int(np.iinfo(img.dtype).min), -(2**53))
        img = np.clip(img, lo, 2**53)  # float64, the work precision, holds these
    mask = data.draw(masks(img.shape))
    np.testing.assert_array_equal(npp.blend(img, img, mask), img)
    np.testing.assert_array_equal(npp.feather_blend(img, img, mask, width=3), img)


def held_exactly(dtype):
    """Integers the work precision filters exactly: all but 64-bit ones beyond
    2**51 (float64's sums of REDUCE round there, see ``float_dtype``), whose
    extremes (the values a wrap-around would come from) are kept."""
    info = np.iinfo(dtype)
    if info.bits < 64:
        return st.integers(info.min, info.max)
    inner = st.integers(max(info.min, -(2**51)), min(info.max, 2**51))
    return st.one_of(st.sampled_from([info.min, info.max]), inner)


@SETTINGS
@given(data=st.data(), dtype=st.sampled_from([*INTS, np.uint64]))
def test_a_constant_integer_image_keeps_its_value_at_every_level(data, dtype):
    value = data.draw(held_exactly(dtype))
    img = np.full(data.draw(st.tuples(st.integers(2, 20), st.integers(2, 20))), value)
    img = img.astype(dtype)
    for level in npp.gaussian_pyramid(img, 2, preserve_dtype=True):
        assert level.dtype == dtype and (level == value).all()
    mask = data.draw(masks(img.shape))
    assert (npp.blend(img, img, mask, 2) == value).all()
