import numpy as np
import pytest

from napari_pyramids.nn import (
    SegmentationCancelled,
    aspp_branch_responses,
    load_model,
    predict_steps,
    segment,
    segment_steps,
)
from napari_pyramids.nn.metrics import match_counts
from napari_pyramids.nn.synthetic import make_nuclei_image
from napari_pyramids.progress import drain


def f1(true, pred):
    """F1 at IoU 0.5 of one image."""
    return float(match_counts(true, pred, (0.5,)).f1[0])


@pytest.fixture(scope="module")
def model():
    return load_model("nuclei")


@pytest.fixture(scope="module")
def scene():
    return make_nuclei_image((400, 448), np.random.default_rng(777))


def test_tiled_agrees_with_whole_image_away_from_border(model, scene):
    image, _ = scene
    whole = segment(image, model, device="cpu")
    tiled = segment(image, model, device="cpu", tile_size=160, overlap=64)
    inner = (slice(16, -16), slice(16, -16))
    agree = np.mean((whole[inner] > 0) == (tiled[inner] > 0))
    assert agree > 0.999
    # instances grow from predicted cores over up to 12 px of rim, so a core that
    # differs by a pixel at a tile seam can move a split: allow 3 % of nuclei
    assert f1(whole, tiled) > 0.97


def test_labels_shape_dtype_and_input_untouched(model, scene):
    image, _ = scene
    image16 = (image.astype(np.float64) / image.max() * 4000).astype(np.uint16)
    before = image16.copy()
    labels = segment(image16, model, device="cpu")
    np.testing.assert_array_equal(image16, before)
    assert labels.shape == image16.shape
    assert labels.dtype == (np.uint8 if labels.max() < 256 else np.uint16)
    # percentile normalisation: the same picture as float in another range
    labels_f = segment(image16.astype(np.float32) * 0.001 - 3.0, model, device="cpu")
    assert f1(labels, labels_f) > 0.99


def test_progress_cancel_and_generator(model, scene):
    image, _ = scene
    calls = []
    labels = segment(
        image,
        model,
        device="cpu",
        tile_size=256,
        overlap=32,
        progress=lambda d, t: calls.append((d, t)),
    )
    total = calls[-1][1]
    assert calls == [(i, total) for i in range(total + 1)] and total == 4
    steps = segment_steps(image, model, device="cpu", tile_size=256, overlap=32)
    seen = []
    try:
        while True:
            seen.append(next(steps))
    except StopIteration as stop:
        np.testing.assert_array_equal(stop.value, labels)
    assert seen == calls
    with pytest.raises(SegmentationCancelled, match="after 2 of 4"):
        segment(
            image,
            model,
            device="cpu",
            tile_size=256,
            overlap=32,
            cancel=lambda: len(calls) > 7,
            progress=lambda d, t: calls.append((d, t)),
        )


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((32, 32, 3), np.uint8), {}, r"RGB.*image\[\.\.\., 2\]"),
        (
            np.zeros((32, 32, 3), np.uint8),
            {"channel_axis": -1},
            r"np.take\(image, c, axis=-1\)",
        ),
        (np.zeros(32), {}, "2-D"),
        (np.zeros((0, 32)), {}, "empty"),
        (np.full((32, 32), np.nan, np.float32), {}, "NaN"),
        (np.array([[0.0, np.inf]] * 16), {}, "NaN or infinite"),
        (np.zeros((32, 32), bool), {}, "dtype bool"),
    ],
)
def test_bad_input_is_a_clear_value_error(model, image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        segment(image, model, device="cpu", **kwargs)


def test_single_channel_axis_is_accepted(model, scene):
    image, _ = scene
    crop = image[:128, :128]
    np.testing.assert_array_equal(
        segment(crop[None], model, device="cpu", channel_axis=0),
        segment(crop, model, device="cpu"),
    )


def test_aspp_branch_responses(model, scene):
    image, _ = scene
    maps = aspp_branch_responses(image[:200, :232], model, device="cpu")
    assert list(maps) == ["1x1", "rate 2", "rate 4", "rate 6", "image pooling"]
    assert all(m.shape == (200, 232) and m.dtype == np.float32 for m in maps.values())
    assert np.ptp(maps["image pooling"]) < 1e-5 < np.ptp(maps["rate 2"])


def test_one_pass_gives_labels_probabilities_and_branches(model, scene):
    image = scene[0][:160, :192]
    steps = predict_steps(
        image, model, device="cpu", tile_size=128, probabilities=True, branches=True
    )
    prediction = drain(steps)
    np.testing.assert_array_equal(
        prediction.labels, segment(image, model, device="cpu", tile_size=128)
    )
    probs = prediction.probabilities
    assert list(probs) == ["background", "core", "rim"]
    np.testing.assert_allclose(sum(probs.values()), 1.0, atol=1e-5)
    inside = prediction.labels > 0
    assert (
        probs["background"][inside].mean() < 0.5 < probs["background"][~inside].mean()
    )
    branches = aspp_branch_responses(image, model, device="cpu", tile_size=128)
    assert list(prediction.branches) == list(branches)
    for name, response in branches.items():
        np.testing.assert_array_equal(prediction.branches[name], response)
    assert prediction.device == "cpu"


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5])
def test_threshold_outside_zero_one_is_rejected(model, threshold):
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        segment(np.zeros((32, 32)), model, threshold=threshold)


@pytest.mark.parametrize(
    ("diameter", "error", "match"),
    [
        (0, ValueError, "positive"),
        (-3.0, ValueError, "positive"),
        (float("nan"), ValueError, "positive"),
        (float("inf"), ValueError, "positive"),
        (500, ValueError, "larger than the image"),
        ("big", TypeError, "number of pixels"),
    ],
)
def test_bad_diameter_is_a_clear_error(model, diameter, error, match):
    with pytest.raises(error, match=match):
        segment(np.zeros((64, 64)), model, diameter=diameter)


def test_large_nuclei_are_segmented_at_a_coarser_octave(model, scene):
    """The scene upscaled 3x, segmented with its diameter, gives the same nuclei."""
    import cv2

    from napari_pyramids.nn.data import nucleus_diameter

    image, truth = (a[:200, :224] for a in scene)
    big = cv2.resize(image.astype(np.float32), None, fx=3, fy=3)
    big_truth = cv2.resize(
        truth.astype(np.uint16), None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST
    )
    diameter = 3 * nucleus_diameter(truth)
    prediction = drain(predict_steps(big, model, diameter=diameter, device="cpu"))
    assert prediction.resampling.octaves >= 1 and not prediction.estimated
    assert prediction.labels.shape == big.shape
    small = segment(image, model, diameter=diameter / 3, device="cpu")
    # about 26 nuclei: 0.1 is two or three of them
    assert f1(big_truth, prediction.labels) > f1(truth, small) - 0.1


def test_diameter_estimate_follows_the_nucleus_size(model, scene):
    import cv2

    from napari_pyramids.nn.data import nucleus_diameter
    from napari_pyramids.nn.diameter import estimate_diameter

    image, truth = scene
    true = nucleus_diameter(truth)
    found = estimate_diameter(image, model, device="cpu")
    assert found == pytest.approx(true, rel=0.35)
    big = cv2.resize(image.astype(np.float32), None, fx=4, fy=4)
    assert estimate_diameter(big, model, device="cpu") == pytest.approx(
        4 * found, rel=0.25
    )


def crowd(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An embryo-like crowd: ~1800 packed 12 px nuclei filling one bright ellipse."""
    import cv2

    rng = np.random.default_rng(seed)
    height, width, radius = 600, 1200, 5
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    inside = ((yy - 300) / 200) ** 2 + ((xx - 600) / 450) ** 2 < 1
    image = 0.25 * cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 20)
    labels = np.zeros((height, width), np.int32)
    pitch = 2 * radius + 2.5
    for row, y in enumerate(np.arange(0, height, pitch)):
        for x in np.arange((row % 2) * pitch / 2, width, pitch):
            centre = (round(x + rng.normal(0, 0.7)), round(y + rng.normal(0, 0.7)))
            if inside[min(int(y), height - 1), min(int(x), width - 1)]:
                cv2.circle(image, centre, radius, float(rng.uniform(0.7, 1.0)), -1)
                cv2.circle(labels, centre, radius, int(labels.max()) + 1, -1)
    image = cv2.GaussianBlur(image, (0, 0), 1.2)
    return image + rng.normal(0, 0.02, image.shape).astype(np.float32), labels


def test_diameter_estimate_sees_the_nuclei_of_a_crowd_not_the_crowd(model):
    """A crowd of small nuclei seen as one blob at a coarse octave is not a nucleus.

    At octave 3 the whole ellipse has the trained nucleus size; one octave
    finer it breaks into nuclei, so no neighbouring scale confirms it.
    """
    from napari_pyramids.nn.data import nucleus_diameter
    from napari_pyramids.nn.diameter import estimate_diameter

    image, truth = crowd()
    true = nucleus_diameter(truth)
    assert 10 < true < 13
    assert estimate_diameter(image, model, device="cpu") == pytest.approx(
        true, rel=0.25
    )


def test_values_beyond_float32_segment_like_the_original(model, scene):
    """float64 images scaled by 1e40 or 1e-300 give the same nuclei."""
    image = scene[0][:160, :192]
    labels = segment(image, model, device="cpu")
    for factor in (1e40, 1e-300):
        scaled = image.astype(np.float64) * factor
        assert f1(labels, segment(scaled, model, device="cpu")) > 0.99


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"device": "no-such-device"}, "unknown device"),
        ({"context_size": 0}, "context_size must be at least 32"),
        ({"min_size": 0}, "min_size must be at least 1"),
    ],
)
def test_bad_options_are_clear_value_errors(model, options, match):
    with pytest.raises(ValueError, match=match):
        segment(np.zeros((64, 64)), model, **options)


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="this machine has CUDA"
)
def test_cuda_without_cuda_is_a_clear_error(model):
    with pytest.raises(ValueError, match="not available on this machine"):
        segment(np.zeros((64, 64)), model, device="cuda")


def test_small_nuclei_are_segmented_upsampled_tile_by_tile(model, scene):
    """Nuclei half the trained size: upsampled per tile, labels on the image grid."""
    from napari_pyramids.core.pyramid import reduce
    from napari_pyramids.nn.data import nucleus_diameter

    image, truth = scene
    small, small_truth = reduce(image), truth[::2, ::2]
    diameter = nucleus_diameter(small_truth)
    prediction = drain(
        predict_steps(small, model, diameter=diameter, device="cpu", probabilities=True)
    )
    assert prediction.resampling.scale > 1.5
    assert prediction.labels.shape == small.shape
    assert prediction.probabilities["core"].shape == small.shape
    np.testing.assert_allclose(sum(prediction.probabilities.values()), 1, atol=1e-5)
    tiled = segment(
        small, model, diameter=diameter, device="cpu", tile_size=160, overlap=64
    )
    assert f1(prediction.labels, tiled) > 0.95  # a seam may move one split
    assert f1(small_truth, prediction.labels) > 0.6


def test_beyond_float32_in_the_upsampled_tiles_and_the_pooled_view(model):
    """Tiles made from the image and the image-pooling view keep float64 too."""
    image, _ = make_nuclei_image((1100, 300), np.random.default_rng(3))
    labels = segment(image, model, diameter=14, device="cpu")  # upsampled, pinned
    huge = segment(image.astype(np.float64) * 1e40, model, diameter=14, device="cpu")
    assert f1(labels, huge) > 0.99
