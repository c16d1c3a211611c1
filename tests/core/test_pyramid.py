"""Behaviour of the pyramid engine: exactness, agreement with OpenCV, conventions."""

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import napari_pyramids as npp
from napari_pyramids.core import _kernels

RNG = np.random.default_rng(1234)


def cv2_gaussian(img, levels):
    out = [img]
    for _ in range(levels - 1):
        out.append(cv2.pyrDown(out[-1]))
    return out


# ------------------------------------------------------------ OpenCV agreement
@pytest.mark.parametrize("shape", [(64, 64), (63, 65), (7, 9), (3, 17), (1, 5), (2, 2)])
@pytest.mark.parametrize("backend", ["opencv", "numpy"])
def test_reduce_and_expand_match_opencv(shape, backend):
    img = RNG.random(shape, dtype=np.float32)
    ours = npp.reduce(img, backend=backend)
    ref = cv2.pyrDown(img)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    up = npp.expand(ref, shape, backend=backend)
    np.testing.assert_allclose(up, cv2.pyrUp(ref, dstsize=shape[::-1]), atol=1e-5)


def test_gaussian_and_laplacian_match_cv2_chain():
    img = RNG.random((257, 130), dtype=np.float32)
    gauss = npp.gaussian_pyramid(img, 5)
    ref = cv2_gaussian(img, 5)
    for ours, theirs in zip(gauss, ref):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    lap = npp.laplacian_pyramid(img, 5)
    for k in range(4):
        up = cv2.pyrUp(ref[k + 1], dstsize=ref[k].shape[::-1])
        np.testing.assert_allclose(lap[k], ref[k] - up, atol=1e-5)
    np.testing.assert_allclose(lap[-1], ref[-1], atol=1e-5)


@pytest.mark.parametrize("a", [0.3, 0.375, 0.45])
def test_backends_agree_for_any_a(a):
    img = RNG.random((2, 37, 52, 3), dtype=np.float32)
    kw = dict(a=a, channel_axis=-1, levels=4)
    for ocv, nump in zip(
        npp.laplacian_pyramid(img, backend="opencv", **kw),
        npp.laplacian_pyramid(img, backend="numpy", **kw),
    ):
        np.testing.assert_allclose(ocv, nump, atol=1e-5)


def test_numpy_kernel_matches_a_direct_convolution():
    """The gather-based REDUCE equals filtering the mirrored signal, then ::2."""
    a = 0.4
    x = RNG.random(23)
    w = _kernels.generating_kernel(a)
    padded = np.pad(x, 2, mode="reflect")  # numpy 'reflect' is BORDER_REFLECT_101
    direct = np.convolve(padded, w[::-1], mode="valid")[::2]
    np.testing.assert_allclose(_kernels.reduce_axis(x, 0, a), direct)


# ------------------------------------------------------------ reconstruction
@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64]),
    backend=st.sampled_from(["opencv", "numpy"]),
)
def test_reconstruct_inverts_laplacian(data, dtype, backend):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=70))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        elements = st.integers(0, min(info.max, 60000))
    else:
        elements = st.floats(-1e3, 1e3, width=np.dtype(dtype).itemsize * 8)
    img = data.draw(hnp.arrays(dtype, shape, elements=elements))
    before = img.copy()
    levels = data.draw(st.integers(1, npp.core.pyramid.max_levels(shape, (0, 1))))
    lap = npp.laplacian_pyramid(img, levels, backend=backend)
    out = npp.reconstruct(lap, backend=backend)
    expected_dtype = np.float64 if dtype in (np.float64, np.int32) else np.float32
    assert out.dtype == expected_dtype
    assert all(band.dtype == expected_dtype for band in lap)
    scale = max(1.0, float(np.abs(img.astype(np.float64)).max()))
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(out, img.astype(np.float64), atol=tol * scale * 8)
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((40, 33, 3), dict(channel_axis=-1)),
        ((4, 40, 33), dict(channel_axis=0)),
        ((40, 4, 33), dict(channel_axis=1)),
        ((5, 40, 33), dict()),  # time axis: frame by frame
        ((2, 3, 30, 31), dict()),
        ((17, 40, 33), dict(reduce_z=True)),
        ((2, 17, 40, 33, 2), dict(reduce_z=True, channel_axis=-1)),
    ],
)
def test_layouts_reconstruct_exactly(shape, kwargs):
    img = RNG.random(shape, dtype=np.float32)
    lap = npp.laplacian_pyramid(img, 3, **kwargs)
    np.testing.assert_allclose(npp.reconstruct(lap), img, atol=1e-6)


def test_frames_and_channels_are_processed_independently():
    frames = RNG.random((3, 31, 44), dtype=np.float32)
    stacked = npp.gaussian_pyramid(frames, 4)
    for t in range(3):
        single = npp.gaussian_pyramid(frames[t], 4)
        for ours, ref in zip(stacked, single):
            np.testing.assert_array_equal(ours[t], ref)
    rgb = RNG.random((3, 31, 44), dtype=np.float32)
    by_channel = npp.gaussian_pyramid(rgb, 4, channel_axis=0)
    for ours, ref in zip(by_channel, npp.gaussian_pyramid(rgb, 4)):
        np.testing.assert_allclose(ours, ref, atol=1e-7)


# ------------------------------------------------------------ shapes and z
def test_level_shapes_are_ceil_halves():
    img = np.zeros((100, 37), np.float32)
    shapes = [lvl.shape for lvl in npp.gaussian_pyramid(img, min_size=1)]
    assert shapes == [(100, 37), (50, 19), (25, 10), (13, 5), (7, 3), (4, 2), (2, 1)]


def test_min_size_controls_default_depth():
    img = np.zeros((256, 300), np.float32)
    assert npp.gaussian_pyramid(img)[-1].shape == (8, 10)
    assert npp.gaussian_pyramid(img, min_size=32)[-1].shape == (32, 38)


def test_volume_leaves_z_alone_unless_asked():
    vol = RNG.random((9, 32, 48), dtype=np.float32)
    assert [v.shape for v in npp.gaussian_pyramid(vol, 3)] == [
        (9, 32, 48),
        (9, 16, 24),
        (9, 8, 12),
    ]
    assert [v.shape for v in npp.gaussian_pyramid(vol, 3, reduce_z=True)] == [
        (9, 32, 48),
        (5, 16, 24),
        (3, 8, 12),
    ]


def test_reduce_z_equals_reducing_each_axis():
    vol = RNG.random((9, 20, 22))
    ours = npp.reduce(vol, reduce_z=True)
    ref = vol
    for ax in range(3):
        ref = _kernels.reduce_axis(ref, ax)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


# ------------------------------------------------------------ alignment
@pytest.mark.parametrize("k", [1, 2, 3])
def test_octave_k_pixel_j_is_level0_pixel_2k_j(k):
    img = np.zeros((128, 128), np.float32)
    j = (5, 9)
    img[j[0] * 2**k, j[1] * 2**k] = 1000.0
    octave = npp.gaussian_pyramid(img, k + 1)[k]
    assert np.unravel_index(np.argmax(octave), octave.shape) == j
    # symmetric around the peak: no half-pixel shift
    row = octave[j[0]]
    np.testing.assert_allclose(row[j[1] - 1], row[j[1] + 1], rtol=1e-6)


# ------------------------------------------------------------ dtypes
def test_dtypes():
    u8 = RNG.integers(0, 255, (33, 40), dtype=np.uint8)
    g = npp.gaussian_pyramid(u8, 3)
    assert g[1].dtype == np.float32 and g[1].max() <= 255  # range kept, not [0, 1]
    assert g[1].max() > 1
    kept = npp.gaussian_pyramid(u8, 3, preserve_dtype=True)
    assert [lvl.dtype for lvl in kept] == [np.uint8] * 3
    assert kept[0] is u8
    np.testing.assert_array_equal(kept[1], np.clip(np.rint(g[1]), 0, 255))
    assert npp.gaussian_pyramid(u8.astype(np.float64), 2)[1].dtype == np.float64
    assert npp.laplacian_pyramid(u8, 3)[0].dtype == np.float32
    assert npp.laplacian_pyramid(u8, 3)[0].min() < 0  # signed bands, not saturated


def test_non_contiguous_input():
    base = RNG.random((80, 90), dtype=np.float32)
    view = base[::2, ::-1].T
    assert not view.flags.c_contiguous
    ref = npp.gaussian_pyramid(np.ascontiguousarray(view), 3)
    for ours, theirs in zip(npp.gaussian_pyramid(view, 3), ref):
        np.testing.assert_array_equal(ours, theirs)


def test_level0_is_read_only_view_and_input_untouched():
    img = RNG.random((32, 32), dtype=np.float32)
    before = img.copy()
    g = npp.gaussian_pyramid(img, 3)
    assert np.shares_memory(g[0], img) and not g[0].flags.writeable
    lap = npp.laplacian_pyramid(img, 3)
    lap[-1] += 1  # results are the caller's to modify
    npp.equal_size_levels(g)
    np.testing.assert_array_equal(img, before)
    assert img.flags.writeable


def test_equal_size_levels():
    img = RNG.random((45, 38), dtype=np.float32)
    lap = npp.laplacian_pyramid(img, 4)
    stack = npp.equal_size_levels(lap)
    assert stack.shape == (4, 45, 38)
    np.testing.assert_allclose(stack.sum(axis=0), img, atol=1e-5)
    g = npp.equal_size_levels(npp.gaussian_pyramid(img, 4))
    np.testing.assert_array_equal(g[0], img)
    assert g[3].std() < g[1].std() < g[0].std()


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "image, kwargs, match",
    [
        (np.zeros(10), {}, "needs 2 spatial axes"),
        (np.zeros((0, 5)), {}, "empty"),
        (np.zeros((10, 10, 3)), dict(channel_axis=3), "channel_axis=3 is out of range"),
        (np.zeros((10, 3)), dict(channel_axis=-1), "needs 2 spatial axes"),
        (np.zeros((10, 10)), dict(reduce_z=True), r"\(z, y, x\)"),
        (np.zeros((16, 20)), dict(levels=7), "at most 5 levels"),
        (np.zeros((16, 20)), dict(levels=0), "at least 1"),
        (np.zeros((16, 20)), dict(a=0.9), "outside"),
        (np.zeros((16, 20), complex), {}, "real numbers"),
        (np.zeros((16, 20)), dict(backend="cuda"), "backend must be"),
    ],
)
def test_bad_input_is_named(image, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        npp.gaussian_pyramid(image, **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused(bad):
    img = RNG.random((40, 40), dtype=np.float32)
    img[13, 7] = bad
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        npp.gaussian_pyramid(img)
    with pytest.raises(ValueError, match="NaN or infinite"):
        npp.laplacian_pyramid(img, 2)


def test_expand_refuses_impossible_shape():
    with pytest.raises(ValueError, match="must be 9 or 10"):
        npp.expand(np.zeros((5, 5)), (11, 10))
    with pytest.raises(ValueError, match="dimensions"):
        npp.expand(np.zeros((5, 5)), (10, 10, 1))


def test_iter_pyramid_yields_the_same_levels_and_checks_eagerly():
    img = RNG.random((50, 61), dtype=np.float32)
    for kind, full in [
        ("gaussian", npp.gaussian_pyramid),
        ("laplacian", npp.laplacian_pyramid),
    ]:
        for lazy, eager in zip(npp.iter_pyramid(img, 4, kind=kind), full(img, 4)):
            np.testing.assert_array_equal(lazy, eager)
    with pytest.raises(ValueError, match="at most"):
        npp.iter_pyramid(img, 40)  # raised at call time, before any work
    assert npp.pyramid_depth(img.shape) == len(npp.gaussian_pyramid(img))


@pytest.mark.parametrize("a", [0.375, 0.4])
def test_opencv_reduce_of_a_pixel_does_not_depend_on_the_frame_width(a):
    # OpenCV's scalar tail rounded differently from its vector code, so the
    # lazy engine's blocks disagreed with the whole image by an ulp (issue 17)
    img = RNG.random((20, 300), dtype=np.float32) * 65535
    whole = npp.reduce(img, a=a, backend="opencv")
    for start in range(0, 40, 2):
        for stop in range(300, 250, -3):
            part = npp.reduce(img[:, start:stop], a=a, backend="opencv")
            inner = slice(1 if start else 0, part.shape[1] - (stop < 300))
            np.testing.assert_array_equal(
                part[:, inner],
                whole[:, start // 2 : start // 2 + part.shape[1]][:, inner],
            )
