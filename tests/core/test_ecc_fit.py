"""The continuous fit of a match's corner and scale (ECC): it converges to the
corner and spacing a template was sampled at, refuses flat windows, stays in
the image and its bounds, and prunes candidates that fall behind."""

import cv2
import numpy as np
import pytest

from napari_pyramids.core.ecc_fit import Fit, fit_all


def texture(shape, seed=0, sigma=2.0, channels=None):
    rng = np.random.default_rng(seed)
    full = shape + ((channels,) if channels else ())
    noise = rng.random(full, dtype=np.float32) * 255
    return cv2.GaussianBlur(noise, (0, 0), sigma).reshape(full)


def sampled(plane, corner, spacing, size):
    """``plane`` sampled at ``corner + spacing * q`` for each pixel ``q`` of a
    ``size`` template (bicubic): the template a fit should find exactly."""
    matrix = np.array([[spacing, 0, corner[1]], [0, spacing, corner[0]]])
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(plane, matrix, size[::-1], flags=flags)
    return out.reshape(size + plane.shape[2:])


@pytest.mark.parametrize("spacing", [0.8, 1.0, 1.25])
def test_fit_converges_to_the_sampled_corner_and_spacing(spacing):
    plane = texture((160, 160))
    truth = (40.3, 51.7)
    template = sampled(plane, truth, spacing, (40, 40))
    fit = Fit(plane, template, (0.5, 2.0))
    (got,) = fit_all(
        [fit],
        [(truth[0] + 0.9, truth[1] - 0.7, spacing * 1.04)],
        least=1,
        margin=0.1,
        steps=8,
        tol=0.01,
    )
    cy, cx, f, zncc = got
    assert abs(cy - truth[0]) < 0.05 and abs(cx - truth[1]) < 0.05
    assert f == pytest.approx(spacing, rel=2e-3)
    assert zncc > 0.999


def test_colour_and_integer_planes_fit_as_float_ones():
    colour = texture((120, 120), seed=1, channels=3)
    template = sampled(colour, (30.4, 22.6), 1.0, (32, 32))
    start = [(31.0, 22.0, 1.02)]
    options = dict(least=1, margin=0.1, steps=8, tol=0.01)
    (as_float,) = fit_all([Fit(colour, template, (0.5, 2))], start, **options)
    assert abs(as_float[0] - 30.4) < 0.05 and abs(as_float[1] - 22.6) < 0.05
    bytes_ = np.clip(np.round(colour), 0, 255).astype(np.uint8)
    (as_bytes,) = fit_all([Fit(bytes_, template, (0.5, 2))], start, **options)
    np.testing.assert_allclose(as_bytes[:3], as_float[:3], atol=0.05)


def test_flat_windows_and_templates_give_no_fit():
    plane = np.full((64, 64), 9.0, np.float32)
    plane[:, 40:] = texture((64, 24), seed=2)
    template = texture((16, 16), seed=3)
    fit = Fit(plane, template, (0.5, 2.0))
    assert fit.step(10.0, 5.0, 1.0) is None  # a window on the flat part
    flat = Fit(plane, np.full((16, 16), 3.0, np.float32), (0.5, 2.0))
    assert flat.t is None
    assert fit_all([flat], [(0.0, 40.0, 1.0)], least=1, margin=1, steps=3, tol=0.1) == [
        None
    ]


def test_fits_stay_in_the_image_and_their_bounds():
    plane = texture((80, 80), seed=4)
    template = texture((20, 20), seed=5)
    fit = Fit(plane, template, (0.9, 1.1))
    cy, cx, f = fit.inside(-5.0, 75.0, 3.0)
    assert f == 1.1
    assert cy == 0.0 and cx + f * 19 <= 79
    (got,) = fit_all([fit], [(-5.0, 75.0, 3.0)], least=1, margin=1, steps=6, tol=0.01)
    cy, cx, f, _ = got
    assert 0.9 <= f <= 1.1 and cy >= 0 and cx >= 0
    assert cy + f * 19 <= 79 and cx + f * 19 <= 79


def test_candidates_far_behind_are_dropped_but_the_least_stay():
    plane = texture((128, 128), seed=6)
    template = sampled(plane, (20.2, 30.6), 1.0, (24, 24))
    fit = Fit(plane, template, (0.5, 2.0))
    starts = [(20.0, 31.0, 1.0), (90.0, 90.0, 1.0), (60.0, 10.0, 1.0)]
    options = dict(margin=0.05, steps=6, tol=0.01)
    done = fit_all([fit] * 3, starts, least=1, **options)
    assert done[0] is not None and done[0][3] > 0.999
    assert done[1] is None and done[2] is None
    kept = fit_all([fit] * 3, starts, least=2, **options)
    assert sum(d is not None for d in kept) == 2
