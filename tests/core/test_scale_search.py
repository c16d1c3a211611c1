"""Template search over a range of scales: templates cut from resized copies of
a picture are found at the right place and scale; the trace; bad scale ranges."""

import cv2
import numpy as np
import pytest
from skimage import data

import napari_pyramids as npp
from napari_pyramids.core.scale_search import SCALE_TOLERANCE, _Templates
from napari_pyramids.sample_data import zoomed_template_arrays


@pytest.fixture(scope="module")
def camera():
    return data.camera().astype(np.float32)


def cut_from_resized(image, zoom, corner, size):
    """Template cut at ``corner`` of ``image`` resized by ``zoom``, and where its
    first pixel lands in ``image`` (cv2.resize maps u to (u + 0.5) / zoom - 0.5)."""
    method = cv2.INTER_AREA if zoom < 1 else cv2.INTER_CUBIC
    copy = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=method)
    y, x = (round(c * zoom) for c in corner)
    template = copy[y : y + size, x : x + size].copy()
    return template, tuple((v + 0.5) / zoom - 0.5 for v in (y, x))


def true_scale_score(image, template, corner, scale):
    """Best ZNCC of the template resampled to exactly ``scale`` within a pixel of
    the true ``corner``: what a search at the true scale would score."""
    exact = _Templates(template[..., None])
    resampled = exact.resampled(scale, 0)[..., 0]
    y, x = (int(np.floor(c)) for c in corner)
    h, w = resampled.shape
    region = image[y - 1 : y + h + 2, x - 1 : x + w + 2]
    return float(npp.zncc_map(region, resampled).max())


@pytest.mark.parametrize(
    ("zoom", "corner", "size"),
    [
        (0.55, (200, 210), 40),
        (0.8, (90, 300), 48),
        (1.3, (180, 200), 48),
        (1.8, (300, 120), 64),
    ],
)
def test_templates_from_resized_copies_are_found(camera, zoom, corner, size):
    template, truth = cut_from_resized(camera, zoom, corner, size)
    (match,) = npp.find_template(camera, template, scales=(0.5, 2.0))
    assert np.abs(np.subtract(match.position, truth)).max() <= 2
    assert match.scale == pytest.approx(1 / zoom, rel=0.05)
    assert match.size == pytest.approx(tuple(n * match.scale for n in template.shape))
    # the ZNCC at the scale found is within the stated tolerance of the true one
    best = true_scale_score(camera, template, truth, 1 / zoom)
    assert match.score >= best - SCALE_TOLERANCE


@pytest.mark.parametrize(
    ("scale", "corner"),
    [(0.713, (86.3, 332.2)), (0.763, (382.2, 338.7)), (1.254, (160.6, 203.2))],
)
def test_sharp_repeating_texture_is_found_at_its_scale(scale, corner):
    """Bricks: with sharp edges the ZNCC fitted between whole pixels rises and
    falls from one trial scale to the next; scores at the sub-pixel corner
    keep the climb over scales going to the right one."""
    brick = data.brick().astype(np.float32)
    template, truth = cut_from_resized(brick, 1 / scale, corner, 32)
    (match,) = npp.find_template(brick, template, scales=(0.5, 2.0))
    assert np.abs(np.subtract(match.position, truth)).max() <= 2
    assert match.scale == pytest.approx(scale, rel=0.05)


def test_zoomed_sample_eye_is_found_at_its_scale():
    photo, template, (corner, scale) = zoomed_template_arrays()
    (match,) = npp.find_template(photo, template, scales=(0.5, 2.0), channel_axis=-1)
    assert np.abs(np.subtract(match.position, corner)).max() <= 2
    assert match.scale == pytest.approx(scale, rel=0.05)
    # the box is the template's size times the scale, centred on the eye
    centre = np.add(corner, (np.array(template.shape[:2]) - 1) * scale / 2)
    assert np.abs(np.subtract(match.center, centre)).max() <= 2


def test_trace_shows_the_scales_each_octave_examined(camera):
    template, _ = cut_from_resized(camera, 1.5, (150, 250), 48)
    (match,) = npp.find_template(camera, template, scales=(0.5, 2.0))
    trace = match.trace
    assert [o.octave for o in trace] == list(range(len(trace) - 1, -1, -1))
    for octave in trace:
        assert len(octave.examined) >= 1
        assert np.all((octave.examined >= 0.5 - 1e-9) & (octave.examined <= 2.0))
        assert len(octave.scales) == len(octave.positions) == len(octave.scores)
        assert set(np.round(octave.scales, 9)) <= set(np.round(octave.examined, 9))

    # the start scales span the whole range, smallest to largest
    examined = np.concatenate([octave.examined for octave in trace])
    assert examined.min() == pytest.approx(0.5) and examined.max() == pytest.approx(2.0)
    assert match.scale in set(trace[-1].scales)


def test_one_scale_range_is_the_plain_search(camera):
    template = camera[200:248, 300:348].copy()
    (plain,) = npp.find_template(camera, template)
    (ranged,) = npp.find_template(camera, template, scales=(1.0, 1.0))
    assert ranged.position == plain.position == (200, 300)
    assert ranged.scale == plain.scale == 1.0
    assert ranged.score == pytest.approx(1.0, abs=1e-4)
    assert np.all(plain.trace[-1].scales == 1.0)
    assert list(plain.trace[-1].examined) == [1.0]


@pytest.mark.parametrize(
    ("scales", "error", "message"),
    [
        ((0.0, 2.0), ValueError, "positive"),
        ((-1.0, 2.0), ValueError, "positive"),
        ((0.5, np.inf), ValueError, "positive"),
        ((2.0, 0.5), ValueError, "inverted"),
        ((0.5, 20.0), ValueError, "larger than the image"),
        ((0.05, 1.0), ValueError, "too small"),
        ("big", TypeError, "pair"),
        ((1.0,), TypeError, "pair"),
    ],
)
def test_bad_scale_ranges(camera, scales, error, message):
    with pytest.raises(error, match=message):
        npp.find_template(camera, camera[100:140, 100:140], scales=scales)


def test_scales_need_a_2d_image():
    vol = np.random.default_rng(0).random((8, 40, 40)).astype(np.float32)
    with pytest.raises(ValueError, match="2-D"):
        npp.find_template(vol, vol[2:5, 10:20, 10:20], scales=(0.8, 1.2))


def test_flat_regions_never_match_at_any_scale():
    """A textured object on a constant background: found at its place and
    scale; no match is a flat window (where ZNCC is undefined); a constant
    image is refused."""
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.random((48, 48)).astype(np.float32), (0, 0), 2)
    template = 10 * (texture - texture.mean())
    image = np.full((256, 256), 7.0, np.float32)
    grown = cv2.resize(template, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    image[120 : 120 + grown.shape[0], 60 : 60 + grown.shape[1]] += grown
    matches = npp.find_template(image, template, scales=(0.5, 2.0), max_matches=5)
    assert np.abs(np.subtract(matches[0].position, (120, 60))).max() <= 2
    assert matches[0].scale == pytest.approx(1.5, rel=0.05)
    for match in matches:
        assert np.isfinite(match.score)
        (y, x), (h, w) = match.position, np.round(match.size).astype(int)
        assert image[y : y + h, x : x + w].std() > 0
    with pytest.raises(ValueError, match="every window of the image is flat"):
        npp.find_template(np.full((128, 128), 7.0), template, scales=(0.5, 2.0))


def test_search_over_scales_leaves_its_inputs_alone():
    photo, template, _ = zoomed_template_arrays()
    grey, grey_template = photo[..., 2].astype(np.float32), template[..., 2].copy()
    for image, patch, axis in ((photo, template, -1), (grey, grey_template, None)):
        before, patch_before = image.copy(), patch.copy()
        npp.find_template(image, patch, scales=(0.5, 2.0), channel_axis=axis)
        np.testing.assert_array_equal(image, before)
        np.testing.assert_array_equal(patch, patch_before)
