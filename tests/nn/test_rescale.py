"""Resampling to the trained nucleus size: exact alignment both ways."""

import numpy as np
import pytest

from napari_pyramids.nn.rescale import Resampling


def _blob(shape, centre, sigma):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.exp(
        -((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma**2)
    ).astype(np.float32)


def _centroid(image):
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    weights = np.where(image > image.max() / 2, image, 0)
    return (yy * weights).sum() / weights.sum(), (xx * weights).sum() / weights.sum()


@pytest.mark.parametrize("scale", [0.3, 0.5, 0.25, 0.77, 1.6, 2.5])
def test_maps_come_back_where_they_were(scale):
    """A blob at a sub-pixel position comes back within 0.1 px."""
    image = _blob((301, 257), (140.3, 97.6), 12)
    resampling = Resampling.for_scale(image.shape, scale)
    work = resampling.to_work(image)
    assert work.shape == resampling.work_shape
    assert work.shape[0] == pytest.approx(301 * scale, abs=1)
    back = resampling.map_to_image(work)
    assert back.shape == image.shape
    np.testing.assert_allclose(_centroid(back), (140.3, 97.6), atol=0.1)
    labels = (work > work.max() / 2).astype(np.uint8)
    mask = resampling.labels_to_image(labels) > 0
    np.testing.assert_allclose(_centroid(mask), (140.3, 97.6), atol=0.6 / scale)


def test_whole_octaves_are_plain_reduce_steps():
    from napari_pyramids.core.pyramid import reduce

    image = np.random.default_rng(0).random((101, 64)).astype(np.float32)
    resampling = Resampling.for_scale(image.shape, 0.25)
    assert resampling.octaves == 2 and resampling.work_shape == (26, 16)
    np.testing.assert_array_equal(resampling.to_work(image), reduce(reduce(image)))


def test_identity_and_bad_scales():
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    same = Resampling.for_scale(image.shape, 1.0)
    assert same.identity
    work = same.to_work(image)
    assert work.dtype == np.float32 and not np.shares_memory(work, image)
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            Resampling.for_scale(image.shape, bad)
