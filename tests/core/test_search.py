"""Coarse-to-fine template search: exact positions, agreement with exhaustive
search (scikit-image, OpenCV), several matches, the trace, 3-D, RGB, bad input."""

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.feature import match_template

import napari_pyramids as npp

RNG = np.random.default_rng(7)


def peak(scores):
    return tuple(int(i) for i in np.unravel_index(np.argmax(scores), scores.shape))


@pytest.fixture(scope="module")
def camera():
    return data.camera().astype(np.float32)


# ------------------------------------------------------------------ zncc_map
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_zncc_map_equals_skimage(dtype):
    image = data.camera()[:200, :240].astype(dtype)
    template = image[50:90, 100:131]
    ours = npp.zncc_map(image, template)
    # skimage in float64 (its float32 path loses ~1e-2 to cancellation)
    ref = match_template(image.astype(np.float64), template.astype(np.float64))
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_zncc_map_equals_skimage_for_rgb_and_volumes():
    rgb = data.astronaut()[100:220, 150:300].astype(np.float64)
    tpl = rgb[30:60, 40:75]
    ref = match_template(rgb, tpl)[..., 0]  # skimage keeps a length-1 channel axis
    np.testing.assert_allclose(npp.zncc_map(rgb, tpl, channel_axis=-1), ref, atol=1e-4)

    vol = RNG.random((12, 40, 36))
    sub = vol[3:8, 10:22, 5:17]
    np.testing.assert_allclose(
        npp.zncc_map(vol, sub), match_template(vol, sub), atol=1e-4
    )


def test_zncc_map_scores_flat_windows_zero_like_skimage():
    image = RNG.random((60, 60)).astype(np.float32)
    image[:30, :30] = 5.0  # a flat corner
    template = image[35:45, 40:52].copy()
    scores = npp.zncc_map(image, template)
    assert np.isfinite(scores).all()
    assert (scores[:20, :18] == 0).all()


# ------------------------------------------------------------- find_template
@pytest.mark.parametrize("corner", [(0, 0), (101, 57), (448, 448), (233, 370)])
def test_planted_template_found_exactly(camera, corner):
    y, x = corner
    template = camera[y : y + 64, x : x + 64].copy()
    (match,) = npp.find_template(camera, template)
    assert match.position == corner
    assert match.score == pytest.approx(1.0, abs=1e-5)
    assert match.shape == (64, 64)
    assert match.center == (y + 31.5, x + 31.5)


def test_agrees_with_exhaustive_opencv_under_noise_and_contrast(camera):
    """The peak equals cv2.matchTemplate's exhaustive peak and its score."""
    for _ in range(6):
        size = int(RNG.choice([24, 40, 64]))
        y, x = RNG.integers(0, 512 - size, 2)
        template = camera[y : y + size, x : x + size]
        if template.std() < 10:
            continue
        image = (0.7 * camera + 20 + RNG.normal(0, 6, camera.shape)).astype(np.float32)
        exhaustive = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
        (match,) = npp.find_template(image, template)
        assert match.position == peak(exhaustive)
        assert match.score == pytest.approx(exhaustive.max(), abs=1e-4)


def test_uint8_input_is_not_modified(camera):
    image = camera.astype(np.uint8)
    template = image[200:240, 300:350].copy()
    before, tbefore = image.copy(), template.copy()
    (match,) = npp.find_template(image, template)
    assert match.position == (200, 300)
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(template, tbefore)


def test_several_matches_with_non_maximum_suppression():
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1, (300, 400)).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    spot = cv2.GaussianBlur(rng.normal(0, 1, (32, 32)).astype(np.float32), (0, 0), 1.5)
    corners = [(20, 30), (150, 300), (240, 60), (100, 180)]
    for y, x in corners:
        image[y : y + 32, x : x + 32] = spot * 3
    matches = npp.find_template(image, spot, max_matches=4)
    assert sorted(m.position for m in matches) == sorted(corners)
    assert [m.score for m in matches] == sorted(
        (m.score for m in matches), reverse=True
    )
    # min_score drops the rest; never two matches on one object
    more = npp.find_template(image, spot, max_matches=10, min_score=0.9)
    assert sorted(m.position for m in more) == sorted(corners)


def test_trace_is_consistent_with_the_result(camera):
    """The search proper (a noisy image: no exact copy) traces every octave,
    and the winner's parents lead up to the start octave (the check scores it
    again at octave 0 and keeps its lineage)."""
    template = camera[300:364, 120:184].copy()
    noisy = (camera + RNG.normal(0, 5, camera.shape)).astype(np.float32)
    (match,) = npp.find_template(noisy, template)
    trace = match.trace
    assert [o.octave for o in trace] == list(range(len(trace) - 1, -1, -1))
    assert len(trace) >= 3  # a 64 px template is searched from octave >= 2
    assert trace[-1].scale == (1, 1) and trace[0].scale == (2 ** trace[0].octave,) * 2
    # the match is octave 0's best candidate, with the same score
    best = int(np.argmax(trace[-1].scores))
    assert tuple(trace[-1].positions[best]) == match.position
    assert trace[-1].scores[best] == pytest.approx(match.score)
    # follow the parents up: each ancestor sits near position / 2**k
    i = best
    for finer, coarser in zip(trace[::-1][:-1], trace[::-1][1:]):
        i = finer.parents[i]
        assert i >= 0
        ancestor = coarser.positions[i]
        expected = np.array(match.position) / coarser.scale
        assert np.abs(ancestor - expected).max() <= 2
    assert (trace[0].parents == -1).all()
    # candidates are inside the image at their octave, scores are ZNCC
    for octave in trace:
        assert (octave.positions >= 0).all()
        assert np.all((octave.scores >= -1) & (octave.scores <= 1))


def test_a_perfect_match_is_followed_alone(camera):
    """A template cut from the searched image: the start octave's best few,
    followed down first, lead to a ZNCC of 1, which nothing can beat, so only
    they are followed down and no check is made; with noise added the full
    refinement and check run."""
    from napari_pyramids.core.copy_probe import PROBED

    template = camera[300:364, 120:184].copy()
    (match,) = npp.find_template(camera, template)
    assert match.position == (300, 120) and match.score == pytest.approx(1, abs=1e-5)
    start, first = match.trace[0], match.trace[1]
    assert all(len(o.scores) <= PROBED for o in match.trace[1:])
    assert (match.trace[-1].parents >= 0).all()  # nothing from the check
    assert ((first.parents >= 0) & (first.parents < PROBED)).all()
    i = first.parents[np.argmax(first.scores)]
    expected = np.array(match.position) / start.scale
    assert np.abs(start.positions[i] - expected).max() <= 2
    noisy = (camera + RNG.normal(0, 8, camera.shape)).astype(np.float32)
    (match,) = npp.find_template(noisy, template)
    assert match.position == (300, 120) and match.score < 1 - 1e-4
    exhaustive = cv2.matchTemplate(noisy, template, cv2.TM_CCOEFF_NORMED).max()
    assert match.score >= exhaustive - 1e-4


def test_levels_one_is_exhaustive(camera):
    template = camera[10:40, 20:60].copy()
    (match,) = npp.find_template(camera, template, levels=1)
    assert len(match.trace) == 1 and match.position == (10, 20)


def test_volume_sub_volume_found():
    rng = np.random.default_rng(5)
    vol = rng.normal(0, 1, (24, 96, 80)).astype(np.float32)
    vol = np.stack([cv2.GaussianBlur(s, (0, 0), 1.2) for s in vol])
    sub = vol[7:15, 30:62, 20:52].copy()
    (match,) = npp.find_template(vol, sub)
    assert match.position == (7, 30, 20)
    assert match.trace[0].scale[0] == 1  # z is not reduced by default
    (iso,) = npp.find_template(vol, sub, reduce_z=True, levels=2)
    assert iso.position == (7, 30, 20) and iso.trace[0].scale == (2, 2, 2)


def test_rgb_template_found():
    rgb = data.astronaut()
    template = rgb[180:240, 200:260].copy()  # the astronaut's eye region
    (match,) = npp.find_template(rgb, template, channel_axis=-1)
    assert match.position == (180, 200)
    assert match.shape == (60, 60)
    channels_first = np.moveaxis(rgb, -1, 0)
    (again,) = npp.find_template(
        channels_first, np.moveaxis(template, -1, 0), channel_axis=0
    )
    assert again.position == (180, 200)


def test_iter_find_template_yields_each_octave(camera):
    from napari_pyramids.core.search import iter_find_template

    search = iter_find_template(camera, camera[100:164, 100:164])
    octaves = []
    with pytest.raises(StopIteration) as done:
        while True:
            octaves.append(next(search).octave)
    assert octaves == sorted(octaves, reverse=True) and octaves[-1] == 0
    assert done.value.value[0].position == (100, 100)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("shape", [(64, 64), (62, 63), (61, 61)])
def test_template_about_the_image_size(camera, shape):
    """Coarse maps of one to four positions score like larger ones (OpenCV
    would read a scalar beside such a map as four channels)."""
    image = camera[100:164, 200:264]
    (match,) = npp.find_template(image, image[: shape[0], : shape[1]])
    assert match.position == (0, 0)
    assert match.score == pytest.approx(1.0, abs=1e-4)


def test_template_larger_than_image():
    with pytest.raises(ValueError, match="larger than the image"):
        npp.find_template(np.ones((20, 20)), RNG.random((30, 10)))


def test_flat_template_is_undefined():
    with pytest.raises(ValueError, match="template is flat"):
        npp.find_template(RNG.random((50, 50)), np.full((10, 10), 3.0))
    with pytest.raises(ValueError, match="template is flat"):
        npp.zncc_map(RNG.random((50, 50)), np.zeros((10, 10)))


def test_flat_image_is_undefined_and_flat_regions_never_match():
    with pytest.raises(ValueError, match="every window of the image is flat"):
        npp.find_template(np.full((64, 64), 7.0), RNG.random((16, 16)))
    image = np.full((128, 128), 7.0, np.float32)
    texture = cv2.GaussianBlur(RNG.random((32, 32)).astype(np.float32), (0, 0), 2)
    patch = 7.0 + 10 * (texture - texture.mean())
    image[90:122, 40:72] = patch
    matches = npp.find_template(image, patch, max_matches=5)
    assert matches[0].position == (90, 40)
    assert all(np.isfinite(m.score) for m in matches)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_matches": 0}, ValueError, "max_matches"),
        ({"candidates": 2.5}, TypeError, "candidates"),
        ({"min_score": 1.5}, ValueError, "min_score"),
        ({"channel_axis": 3}, ValueError, "channel_axis"),
    ],
)
def test_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        npp.find_template(RNG.random((40, 40)), RNG.random((8, 8)), **kwargs)


def test_bad_arrays():
    with pytest.raises(ValueError, match="dimensions"):
        npp.find_template(RNG.random((40, 40)), RNG.random((8, 8, 3)))
    with pytest.raises(ValueError, match="channels"):
        npp.find_template(
            RNG.random((40, 40, 3)), RNG.random((8, 8, 4)), channel_axis=-1
        )
    with pytest.raises(ValueError, match="NaN"):
        npp.find_template(RNG.random((40, 40)), np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="empty"):
        npp.find_template(RNG.random((40, 40)), np.zeros((0, 8)))
    with pytest.raises(ValueError, match="2-D"):
        npp.find_template(RNG.random((4, 5, 40, 40)), RNG.random((2, 2, 8, 8)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (63, 62), (17, 40)])
@pytest.mark.parametrize(
    "kwargs", [{}, {"levels": 1}, {"scales": (0.8, 1.25)}, {"levels": 2}]
)
def test_nan_or_inf_anywhere_in_the_image_is_refused(bad, where, kwargs):
    """One bad pixel, at a corner, an edge or inside, is found (the image's
    coarsest pyramid level is checked, not the image itself)."""
    for dtype in (np.float32, np.float64):
        image = RNG.random((64, 63)).astype(dtype)
        template = image[20:36, 10:26].copy()
        image[where] = bad
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            npp.find_template(image, template, **kwargs)
    if "scales" in kwargs:
        return  # scale search takes 2-D images only
    volume = RNG.random((6, 40, 40))
    volume[5, 39, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        npp.find_template(volume, volume[1:4, 5:20, 5:20].copy(), **kwargs)


@pytest.mark.parametrize("scale", [1e20, 1e30, 1e-30, 1e-35])
def test_zncc_does_not_depend_on_the_intensity_scale(scale):
    # float32 sums of squares overflowed (every window "flat") or underflowed
    # (a wrong match with score 0) at extreme scales (issue 17)
    rng = np.random.default_rng(3)
    img = rng.random((96, 96)).astype(np.float32)
    tpl = img[30:46, 50:66].copy()
    scaled_img, scaled_tpl = (img * scale).astype(np.float32), tpl * scale
    scaled_tpl = scaled_tpl.astype(np.float32)
    np.testing.assert_allclose(
        npp.zncc_map(scaled_img, scaled_tpl), npp.zncc_map(img, tpl), atol=1e-4
    )
    [match] = npp.find_template(scaled_img, scaled_tpl)
    assert match.position == (30, 50) and match.score > 0.999


# ------------------------------------------------------------ never worse
def exhaustive_best(image, template):
    """The exhaustive ZNCC maximum over windows that are not flat."""
    return float(npp.zncc_map(image, template).max())


@pytest.mark.parametrize("name", ["brick", "grass", "gravel", "text", "camera"])
def test_never_below_exhaustive_on_noisy_repetitive_pictures(name):
    """Found ZNCC >= exhaustive maximum - 1e-4, also when the search follows a
    single candidate from the start octave: the check at octave 0 (the
    remaining look-alikes, then the regions the coarse map leaves in doubt)
    must make up for it."""
    rng = np.random.default_rng(11)
    clean = getattr(data, name)().astype(np.float32)
    for _ in range(3):
        size = int(rng.choice([24, 32, 48]))
        y, x = (int(rng.integers(0, n - size)) for n in clean.shape)
        template = clean[y : y + size, x : x + size]
        if template.std() < 4:
            continue
        image = 0.8 * clean + 10 + rng.normal(0, 10, clean.shape)
        image = image.astype(np.float32)
        best = exhaustive_best(image, template)
        for options in ({}, {"candidates": 1}):
            (match,) = npp.find_template(image, template, **options)
            assert match.score >= best - 1e-4, (name, size, options)


def test_the_check_adds_octave_zero_candidates():
    """With one candidate followed, a noisy brick wall needs the check: octave
    0 holds candidates that no coarser candidate led to (parent -1)."""
    rng = np.random.default_rng(2)
    clean = data.brick().astype(np.float32)
    template = clean[200:232, 300:332]
    image = (clean + rng.normal(0, 12, clean.shape)).astype(np.float32)
    (match,) = npp.find_template(image, template, candidates=1)
    assert match.score >= exhaustive_best(image, template) - 1e-4
    assert (match.trace[-1].parents == -1).any()


def test_the_check_scores_only_the_tiles_left_in_doubt():
    """Doubtful windows too many to score one by one, all in one part of the
    image: the exhaustive passes over the runs of tiles holding them find the
    best of those windows, read less than the image, and leave the rest out."""
    from napari_pyramids.core import search_engine as engine
    from napari_pyramids.core.zncc import _Scorer

    rng = np.random.default_rng(5)
    image = cv2.GaussianBlur(rng.normal(0, 1, (512, 512)), (0, 0), 1.5)
    image = image.astype(np.float32)
    template = image[300:332, 340:372]
    level = image[None, :, :, None]
    scorer = _Scorer(template[None, :, :, None])
    coarse = np.zeros((1, 121, 121), np.float32)  # octave 2 of the 512² image
    coarse[0, 60:100, 70:110] = 1.0  # doubt: corners 240-400 x 280-440 (+-2)
    scale = np.array([1, 4, 4])
    doubt = np.argwhere(engine._grown(coarse)[1] >= 0.5)
    runs = engine._doubtful_runs(doubt, scale, 2, scorer.shape, level.shape[:3])
    assert runs is not None
    assert sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in runs) < image.size / 2
    positions, values, _ = engine._doubtful(level, scorer, coarse, scale, 0.5, 12)
    exact = npp.zncc_map(image, template)
    lo, hi = doubt.min(axis=0)[1:] * 4 - 2, doubt.max(axis=0)[1:] * 4 + 2
    best = exact[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1].max()
    assert values[0] == pytest.approx(best, abs=1e-5)
    assert tuple(positions[0][1:]) == (300, 340)
    for y, x in positions[:, 1:]:  # every candidate comes from a run
        assert any(y0 <= y < y1 and x0 <= x < x1 for y0, y1, x0, x1 in runs)


# ---------------------------------------------------------------- sub-pixel
def test_subpixel_corner_of_images_shifted_by_fractions(camera):
    """Images shifted by known fractions of a pixel (cubic), templates cut from
    the unshifted image: the sub-pixel corner is off by < 0.1 px (median)."""
    from scipy import ndimage

    rng = np.random.default_rng(4)
    errors = []
    for _ in range(12):
        shift = rng.uniform(-0.5, 0.5, 2)
        moved = ndimage.shift(camera, shift, order=3, mode="nearest")
        y, x = (int(v) for v in rng.integers(40, 400, 2))
        template = camera[y : y + 48, x : x + 48]
        if template.std() < 10:
            continue
        (match,) = npp.find_template(moved, template)
        truth = np.array([y, x]) + shift
        assert np.abs(np.subtract(match.position, truth)).max() <= 1
        assert np.abs(np.subtract(match.subpixel, match.position)).max() <= 0.5
        errors.extend(np.abs(np.subtract(match.subpixel, truth)))
    assert len(errors) >= 16
    assert np.median(errors) < 0.1
    # the integer peak alone is off by about a quarter pixel on average
    assert np.median(errors) < 0.5 * 0.25


def test_subpixel_of_an_exact_copy_is_the_integer_corner(camera):
    (match,) = npp.find_template(camera, camera[120:170, 210:266].copy())
    assert match.position == (120, 210)
    np.testing.assert_allclose(match.subpixel, (120, 210), atol=0.05)
    assert match.subpixel_center == pytest.approx(match.center, abs=0.05)


def test_subpixel_keeps_the_integer_corner_on_the_image_border(camera):
    (match,) = npp.find_template(camera, camera[0:40, 472:512].copy())
    assert match.position == (0, 472)
    assert match.subpixel == (0.0, 472.0)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_float32_coarse_maps_agree_with_exact_ones(channels):
    """The coarse octaves' float32 window moments, grey or colour (channels
    jointly): the same ZNCC as the float64 path to float32 precision, and the
    same flat windows."""
    from napari_pyramids.core.zncc import _Scorer

    image = RNG.random((1, 60, 70, channels)).astype(np.float32) * 50 + 100
    image[0, :20, :20] = 7.0  # a flat corner
    template = image[:, 30:42, 40:49].copy()
    exact = _Scorer(template)(image)
    rough = _Scorer(template, rough=True)(image)
    assert _Scorer(template, rough=True).rough
    np.testing.assert_array_equal(np.isnan(rough), np.isnan(exact))
    np.testing.assert_allclose(rough, exact, atol=1e-4, equal_nan=True)
