"""Behaviour of the blends: agreement with the textbook cv2 chain, exact limits,
dtypes, volumes, seam energy on the sample, and clear errors for bad input."""

import cv2
import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.sample_data import blend_pair_arrays

RNG = np.random.default_rng(7)


def cv2_chain_blend(img_a, img_b, mask, levels):
    """Burt & Adelson in its textbook order, with cv2.pyrDown / cv2.pyrUp only."""
    ga, gb, gm = [img_a], [img_b], [mask]
    for _ in range(levels - 1):
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gm.append(cv2.pyrDown(gm[-1]))

    def up(x, like):
        return cv2.pyrUp(x, dstsize=like.shape[1::-1])

    def mix(m, x, y):
        m = m[..., None] if x.ndim == 3 else m
        return m * x + (1 - m) * y

    out = mix(gm[-1], ga[-1], gb[-1])
    for k in range(levels - 2, -1, -1):
        band = mix(gm[k], ga[k] - up(ga[k + 1], ga[k]), gb[k] - up(gb[k + 1], gb[k]))
        out = up(out, ga[k]) + band
    return out


def psnr(x, ref):
    peak = ref.max() - ref.min()
    return 10 * np.log10(peak**2 / np.mean((x - ref) ** 2))


def soft_disc(shape):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(yy - shape[0] / 2, xx - shape[1] / 3)
    return np.clip((shape[0] / 3 - r) / 6, 0, 1).astype(np.float32)


# ------------------------------------------------------------ the algorithm
@pytest.mark.parametrize("shape", [(131, 97, 3), (64, 80), (33, 50, 4)])
def test_blend_matches_the_cv2_chain(shape):
    img_a = RNG.random(shape, dtype=np.float32)
    img_b = RNG.random(shape, dtype=np.float32)
    mask = soft_disc(shape[:2])
    channel_axis = -1 if len(shape) == 3 else None
    ours = npp.blend(img_a, img_b, mask, 5, channel_axis=channel_axis)
    ref = cv2_chain_blend(img_a, img_b, mask, 5)
    assert ours.dtype == np.float32 and ours.shape == shape
    assert psnr(ours, ref) > 50
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_iter_blend_reports_progress_and_returns_the_blend():
    img_a = RNG.random((64, 48, 3), dtype=np.float32)
    img_b = RNG.random((64, 48, 3), dtype=np.float32)
    mask = soft_disc((64, 48))
    steps = npp.iter_blend(img_a, img_b, mask, 4, channel_axis=-1)
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as done:
            result = done.value
            break
    assert seen == [(k, 8) for k in range(1, 9)]
    np.testing.assert_array_equal(
        result, npp.blend(img_a, img_b, mask, 4, channel_axis=-1)
    )
    with pytest.raises(ValueError, match="shape"):  # checked before any work
        npp.iter_blend(img_a, img_b[:-1], mask, channel_axis=-1)


def test_uniform_masks_return_an_image_exactly():
    img_a = RNG.random((40, 50, 3), dtype=np.float32)
    img_b = RNG.random((40, 50, 3), dtype=np.float32)
    ones, zeros = np.ones((40, 50)), np.zeros((40, 50), dtype=bool)
    for func in (npp.blend, npp.feather_blend, npp.cut_blend):
        np.testing.assert_array_equal(func(img_a, img_b, ones, channel_axis=-1), img_a)
        np.testing.assert_array_equal(func(img_a, img_b, zeros, channel_axis=-1), img_b)


def test_far_from_the_mask_border_the_blend_is_the_selected_image():
    """The general path (not the uniform shortcut): A where the mask is 1, far away."""
    img_a = RNG.random((128, 128), dtype=np.float32)
    img_b = RNG.random((128, 128), dtype=np.float32)
    mask = np.ones((128, 128), dtype=np.float32)
    mask[:4, :4] = 0
    out = npp.blend(img_a, img_b, mask, 3)
    np.testing.assert_allclose(out[32:, 32:], img_a[32:, 32:], atol=1e-6)
    assert not np.allclose(out[:4, :4], img_a[:4, :4], atol=1e-2)


def test_one_level_is_alpha_blending():
    img_a = RNG.random((30, 20), dtype=np.float32)
    img_b = RNG.random((30, 20), dtype=np.float32)
    mask = RNG.random((30, 20), dtype=np.float32)
    out = npp.blend(img_a, img_b, mask, 1)
    np.testing.assert_allclose(out, mask * img_a + (1 - mask) * img_b, atol=1e-6)


def test_uint8_in_uint8_out_rounded_and_clipped_not_wrapped():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    mask = np.zeros((64, 64), dtype=bool)
    mask[:, :32] = True
    for value, past_the_range in [(255, lambda x: x > 255), (0, lambda x: x < 0)]:
        flat = np.full((64, 64), value, dtype=np.uint8)
        exact = npp.blend(checker.astype(np.float32), flat.astype(np.float32), mask, 4)
        assert past_the_range(exact).any()  # the blend rings past the uint8 range
        out = npp.blend(checker, flat, mask, 4)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, np.clip(np.rint(exact), 0, 255))


def test_dtypes_follow_the_inputs():
    mask = soft_disc((32, 32))
    u8 = RNG.integers(0, 256, (32, 32), dtype=np.uint8)
    f32 = RNG.random((32, 32), dtype=np.float32)
    f64 = RNG.random((32, 32))
    assert npp.blend(u8, f32, mask).dtype == np.float32
    assert npp.blend(f64, f64, mask).dtype == np.float64
    assert npp.blend(u8, u8.astype(np.uint16), mask).dtype == np.uint16
    assert npp.feather_blend(u8, u8, mask).dtype == np.uint8
    assert npp.cut_blend(u8, f64, mask).dtype == np.float64


def test_integer_masks_are_labels_and_bool_masks_are_weights():
    img_a = RNG.random((40, 40), dtype=np.float32)
    img_b = RNG.random((40, 40), dtype=np.float32)
    labels = np.zeros((40, 40), dtype=np.int32)
    labels[5:20, 5:30] = 3
    labels[25:35, 10:20] = 7
    as_bool = npp.blend(img_a, img_b, labels != 0, 3)
    np.testing.assert_array_equal(npp.blend(img_a, img_b, labels, 3), as_bool)
    np.testing.assert_allclose(
        as_bool, npp.blend(img_a, img_b, (labels != 0).astype(float), 3), atol=1e-6
    )


def test_channel_axis_first_equals_channel_axis_last():
    img_a = RNG.random((4, 45, 38), dtype=np.float32)  # RGBA, channels first
    img_b = RNG.random((4, 45, 38), dtype=np.float32)
    mask = soft_disc((45, 38))
    first = npp.blend(img_a, img_b, mask, 4, channel_axis=0)
    last = npp.blend(
        np.moveaxis(img_a, 0, -1), np.moveaxis(img_b, 0, -1), mask, 4, channel_axis=-1
    )
    np.testing.assert_allclose(first, np.moveaxis(last, -1, 0), atol=1e-6)


def textbook_blend(img_a, img_b, mask, levels, **kw):
    """The spline in its textbook order, with the project's own pyramids."""
    la = npp.laplacian_pyramid(img_a, levels, **kw)
    lb = npp.laplacian_pyramid(img_b, levels, **kw)
    gm = npp.gaussian_pyramid(mask, levels, reduce_z=kw.get("reduce_z", False))
    return npp.reconstruct([m * x + (1 - m) * y for m, x, y in zip(gm, la, lb)])


def test_volumes_slice_by_slice_and_with_reduce_z():
    img_a = RNG.random((9, 24, 20), dtype=np.float32)
    img_b = RNG.random((9, 24, 20), dtype=np.float32)
    mask = (RNG.random((9, 24, 20)) > 0.5).astype(np.float32)
    per_slice = npp.blend(img_a, img_b, mask, 3)
    for z in range(9):
        np.testing.assert_allclose(
            per_slice[z], npp.blend(img_a[z], img_b[z], mask[z], 3), atol=1e-6
        )
    iso = npp.blend(img_a, img_b, mask, 3, reduce_z=True)
    ref = textbook_blend(img_a, img_b, mask, 3, reduce_z=True)
    np.testing.assert_allclose(iso, ref, atol=1e-5)
    assert not np.allclose(iso, per_slice, atol=1e-3)  # z really was reduced


def test_feather_matches_a_blurred_alpha_blend():
    img_a = RNG.random((60, 70, 3), dtype=np.float32)
    img_b = RNG.random((60, 70, 3), dtype=np.float32)
    mask = np.zeros((60, 70), dtype=np.float32)
    mask[:, :35] = 1
    alpha = cv2.GaussianBlur(mask, (0, 0), 12 / 4, borderType=cv2.BORDER_REFLECT_101)
    ref = alpha[..., None] * img_a + (1 - alpha[..., None]) * img_b
    out = npp.feather_blend(img_a, img_b, mask, width=12, channel_axis=-1)
    np.testing.assert_allclose(out, ref, atol=2e-3)
    raw = npp.feather_blend(img_a, img_b, mask, width=0, channel_axis=-1)
    np.testing.assert_allclose(raw, npp.cut_blend(img_a, img_b, mask, channel_axis=-1))


def test_cut_thresholds_soft_masks_at_one_half():
    img_a = np.zeros((5, 5), dtype=np.uint8)
    img_b = np.full((5, 5), 9, dtype=np.uint8)
    mask = np.linspace(0, 1, 25).reshape(5, 5)
    np.testing.assert_array_equal(
        npp.cut_blend(img_a, img_b, mask), np.where(mask >= 0.5, 0, 9)
    )


def test_pyramid_blend_has_less_seam_energy_than_a_cut_on_the_sample():
    cat, coffee, mask = blend_pair_arrays()
    energy = {
        name: npp.seam_energy(
            func(cat, coffee, mask, channel_axis=-1), mask, channel_axis=-1
        )
        for name, func in [("cut", npp.cut_blend), ("pyramid", npp.blend)]
    }
    assert energy["pyramid"] < 0.5 * energy["cut"]


def test_seam_energy_measures_the_jump_at_the_border():
    mask = np.zeros((20, 20), dtype=bool)
    mask[:, :10] = True
    step = np.where(mask, 1.0, 0.0)
    # The band is the column either side of the border (9 and 10), where central
    # differences see half the unit step.
    assert npp.seam_energy(step, mask) == pytest.approx(0.5)
    assert npp.seam_energy(np.ones((20, 20)), mask) == 0


# ------------------------------------------------------- inputs and bad input
def test_inputs_are_never_modified():
    img_a = RNG.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    img_b = RNG.random((40, 30, 3), dtype=np.float32)
    mask = soft_disc((40, 30))
    for x in (img_a, img_b, mask):
        x.flags.writeable = False  # any in-place write would raise
    copies = [img_a.copy(), img_b.copy(), mask.copy()]
    for func in (npp.blend, npp.feather_blend, npp.cut_blend):
        func(img_a, img_b, mask, channel_axis=-1)
    for before, after in zip(copies, (img_a, img_b, mask)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("func", [npp.blend, npp.feather_blend, npp.cut_blend])
def test_images_of_different_shapes_are_refused_with_the_fix(func):
    mask = np.ones((30, 40))
    with pytest.raises(ValueError, match=r"\(30, 40\).*\(30, 41\).*resize.*crop"):
        func(np.zeros((30, 40)), np.zeros((30, 41)), mask)
    with pytest.raises(ValueError, match="RGB.*grey.*gray2rgb"):
        func(np.zeros((30, 40, 3)), np.zeros((30, 40)), mask)
    with pytest.raises(ValueError, match="RGBA.*RGB"):
        func(np.zeros((30, 40, 3)), np.zeros((30, 40, 4)), mask, channel_axis=-1)


@pytest.mark.parametrize(
    ("mask", "kwargs", "message"),
    [
        (
            np.ones((30, 41)),
            {"channel_axis": -1},
            r"mask has shape \(30, 41\).*\(30, 40\).*resize",
        ),
        (np.ones((30, 40)), {}, "look RGB.*channel_axis=-1"),
        (np.ones((30, 40, 3)), {"channel_axis": -1}, "one weight per pixel"),
        (
            np.linspace(-1, 2, 1200).reshape(30, 40),
            {"channel_axis": -1},
            r"\[0, 1\].*-1 to 2.*np.clip",
        ),
        (np.full((30, 40), np.nan), {"channel_axis": -1}, "NaN"),
        (np.ones((0, 40)), {"channel_axis": -1}, "empty"),
    ],
)
def test_bad_masks_are_refused_with_the_fix(mask, kwargs, message):
    img = np.zeros((30, 40, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        npp.blend(img, img, mask, **kwargs)


def test_other_bad_input():
    img = RNG.random((16, 16), dtype=np.float32)
    bad = img.copy()
    bad[3, 3] = np.nan
    mask = soft_disc((16, 16))
    with pytest.raises(ValueError, match=r"image_b contains \d+ NaN"):
        npp.blend(img, bad, mask)
    with pytest.raises(ValueError, match="levels=9"):
        npp.blend(img, img, mask, 9)
    with pytest.raises(ValueError, match="width"):
        npp.feather_blend(img, img, mask, width=-1)
    with pytest.raises(TypeError, match="mask must be"):
        npp.blend(img, img, np.full((16, 16), "a"))
    with pytest.raises(ValueError, match="no border"):
        npp.seam_energy(img, np.ones((16, 16)))
