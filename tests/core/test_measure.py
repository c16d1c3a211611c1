"""Per-nucleus measurements against hand-counted cases."""

import numpy as np
import pytest

import napari_pyramids as npp


def test_areas_centroids_and_intensities():
    labels = np.zeros((10, 12), np.uint16)
    labels[0:2, 0:3] = 4  # 6 px, centre (0.5, 1)
    labels[5:9, 6:10] = 9  # 16 px, centre (6.5, 7.5)
    image = np.zeros(labels.shape, np.uint8)
    image[labels == 4] = 10
    image[labels == 9] = 255
    table = npp.measure(labels, image, scale=(0.5, 0.25), unit="um")
    assert table["label"].tolist() == [4, 9]
    assert table["pixels"].tolist() == [6, 16]
    assert table["centroid_y"].tolist() == [0.5, 6.5]
    assert table["centroid_x"].tolist() == [1.0, 7.5]
    assert table["mean_intensity"].tolist() == [10, 255]
    assert table["integrated_intensity"].tolist() == [60, 16 * 255]  # no uint8 wrap
    assert table["area_um"].tolist() == pytest.approx([6 * 0.125, 16 * 0.125])
    assert table["centroid_y_um"].tolist() == pytest.approx([0.25, 3.25])


def test_stack_ranges_and_volume():
    labels = np.zeros((4, 6, 6), np.uint8)
    labels[1:3, 1:3, 1:3] = 1  # planes 1-2
    labels[3, 4:6, 4:6] = 2  # plane 3
    table = npp.measure(labels, scale=(2.0, 1.0, 1.0))
    assert table["z_first"].tolist() == [1, 3] and table["z_last"].tolist() == [2, 3]
    assert table["volume"].tolist() == [16.0, 8.0]
    frames = npp.measure(labels, axes="tyx")
    assert frames["t_first"].tolist() == [1, 3] and "volume" not in frames


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (np.zeros((4, 4), np.float32), {}, "integers"),
        (np.zeros(4, np.uint8), {}, "2-D to 4-D"),
        (np.zeros((4, 4), np.uint8), {"image": np.zeros((4, 5))}, "differ in shape"),
        (np.zeros((4, 4), np.uint8), {"scale": (1.0,)}, "one scale per axis"),
        (np.zeros((4, 4), np.uint8), {"axes": "zyx"}, "do not fit"),
    ],
)
def test_bad_input(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        npp.measure(labels, **kwargs)
