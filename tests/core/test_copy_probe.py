"""The probe for an exact copy of the template (core/copy_probe.py)."""

import numpy as np
import pytest
from skimage import data

import napari_pyramids as npp
from napari_pyramids.core.copy_probe import (
    PROBED,
    _start_level,
    box_reduce,
    find_copy,
)
from napari_pyramids.core.search_inputs import _Layout
from napari_pyramids.core.zncc import _Scorer

RNG = np.random.default_rng(7)
OPTIONS = dict(max_matches=1, min_score=None, count=12, refine_radius=3)


@pytest.fixture(scope="module")
def camera():
    return data.camera().astype(np.float32)


def _block_means(a, f):
    z, h, w = (n // k for n, k in zip(a.shape[:3], f))
    a = a[: z * f[0], : h * f[1], : w * f[2]].astype(np.float64)
    return a.reshape(z, f[0], h, f[1], w, f[2], -1).mean(axis=(1, 3, 5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int32])
@pytest.mark.parametrize("channels", [1, 3, 6])
def test_box_reduce_is_the_block_mean(dtype, channels):
    a = (RNG.random((2, 37, 51, channels)) * 1000).astype(dtype)
    out = box_reduce(a, (1, 4, 4))
    assert out.shape == (2, 9, 12, channels)
    tolerance = 0.5 if np.issubdtype(out.dtype, np.integer) else 1e-3
    np.testing.assert_allclose(out, _block_means(a, (1, 4, 4)), atol=tolerance)
    z_too = box_reduce(a, (2, 2, 2))
    assert z_too.shape == (1, 18, 25, channels)
    np.testing.assert_allclose(z_too, _block_means(a, (2, 2, 2)), atol=1e-3)


def test_the_start_level_refuses_nan_even_in_the_ends_it_drops():
    image = RNG.random((1, 67, 70, 1)).astype(np.float32)
    assert np.isfinite(_start_level(image, (1, 8, 8))).all()
    for where in [(0, 10, 10, 0), (0, 66, 3, 0), (0, 5, 69, 0)]:
        bad = image.copy()
        bad[where] = np.nan
        with pytest.raises(ValueError, match="NaN or infinite"):
            _start_level(bad, (1, 8, 8))


def _probe(image, template, depth, **options):
    layout = _Layout(image, template, None)
    return find_copy(
        layout.internal(image),
        layout.internal(template),
        layout,
        depth,
        np.array([1, 2, 2]),
        {**OPTIONS, **options},
        exact=_Scorer(layout.internal(template)),
    )


def test_the_probe_finds_a_copy_and_says_how(camera):
    template = camera[201:265, 77:141].copy()
    trace, (match,) = _probe(camera, template, depth=4)
    assert match.position == (201, 77) and match.score >= 1 - 1e-4
    assert [o.octave for o in trace] == [3, 0]  # the octaves between skipped
    start, final = trace
    assert len(start.scores) <= PROBED and (start.parents == -1).all()
    best = np.argmax(final.scores)
    assert tuple(final.positions[best]) == (201, 77)
    # the block mean of the start octave puts the corner within 1.5 blocks
    i = final.parents[best]
    assert np.abs(start.positions[i] * 8 - (201, 77)).max() <= 12


def test_the_probe_gives_way_where_nothing_is_a_copy(camera):
    image = (camera + RNG.normal(0, 6, camera.shape)).astype(np.float32)
    template = camera[201:265, 77:141].copy()
    assert _probe(image, template, depth=4) is None
    assert _probe(camera, template, depth=1) is None
    # more matches than it follows: it cannot settle, so it does not try
    assert _probe(camera, template, 4, max_matches=3) is None


def test_find_template_ends_on_a_copy_or_searches_properly(camera):
    """Both ways give the exhaustive peak: the copy found by the probe, the
    noisy image by the search proper (whose trace has more candidates)."""
    template = camera[300:348, 220:268].copy()
    (copy,) = npp.find_template(camera, template)
    assert copy.position == (300, 220) and copy.score == pytest.approx(1, abs=1e-5)
    noisy = (camera + RNG.normal(0, 8, camera.shape)).astype(np.float32)
    (found,) = npp.find_template(noisy, template)
    exhaustive = npp.zncc_map(noisy, template)
    assert found.score >= exhaustive.max() - 1e-4
    assert len(found.trace[0].scores) > PROBED


@pytest.mark.parametrize("peak", [1e36, float(np.finfo(np.float32).max) / 2, 1e-36])
def test_a_copy_in_an_image_beyond_float32s_safe_range_is_found_exactly(peak):
    """The probe scores only windows within float32's safe range; the search
    proper scales the whole image first. A sign checkerboard makes the block
    means of the start octave cancel, so the coarse octave hides the peak."""
    rng = np.random.default_rng(5)
    signs = np.where(np.add.outer(np.arange(128), np.arange(128)) % 2, -1, 1)
    image = (rng.uniform(0.5, 1, (128, 128)) * signs * peak).astype(np.float32)
    template = image[40:72, 30:62].copy()
    (match,) = npp.find_template(image, template)
    assert match.position == (40, 30) and match.score == pytest.approx(1, abs=1e-4)
