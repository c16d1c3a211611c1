"""From core and foreground masks to instance labels."""

import cv2
import numpy as np
from scipy import ndimage as ndi

from napari_pyramids.nn.instances import instances_from_masks
from napari_pyramids.nn.metrics import match_counts
from napari_pyramids.nn.synthetic import classes_from_labels, make_dataset


def test_ground_truth_classes_give_back_the_instances():
    """Post-processing fed the true class map recovers the nuclei (F1 > 0.95).

    The generated nuclei are 6-90 px across, not rescaled to the trained
    size the default smallest nucleus is meant for, so none is dropped here.
    """
    totals = dict(tp=0, fp=0, fn=0)
    for _, labels in make_dataset(4, (128, 128), 77):
        classes = classes_from_labels(labels)
        pred = instances_from_masks(classes == 1, classes > 0, min_size=6)
        counts = match_counts(labels, pred, (0.5,))
        for key in totals:
            totals[key] += int(getattr(counts, key)[0])
    f1 = 2 * totals["tp"] / (2 * totals["tp"] + totals["fp"] + totals["fn"])
    assert f1 > 0.95


def test_core_specks_do_not_split_a_nucleus():
    """A core speck smaller than min_seed seeds nothing; a real core still does."""
    foreground = np.zeros((40, 40), bool)
    foreground[5:35, 5:35] = True
    interior = np.zeros_like(foreground)
    interior[12:28, 12:20] = True  # the nucleus's core
    interior[25:27, 30:31] = True  # a 2-pixel speck near its edge
    labels = instances_from_masks(interior, foreground, min_seed=4)
    assert labels.max() == 1 and (labels[foreground] == 1).all()
    assert instances_from_masks(interior, foreground, min_seed=1).max() == 2


def test_growth_does_not_depend_on_the_row_bands():
    """Seeds grow across the row bands (256 rows) as they would in one piece.

    The reference grows the whole image at once, the plain way. The
    foreground is one large smooth blob, so seeds grow the full 20 steps and
    cross band edges.
    """
    rng = np.random.default_rng(5)
    foreground = ndi.gaussian_filter(rng.random((700, 600)), 8) > 0.49
    interior = foreground & (rng.random(foreground.shape) > 0.9995)
    interior = ndi.binary_dilation(interior, iterations=2)
    seeds, count = ndi.label(interior)
    expected = seeds.astype(np.float32)
    for _ in range(20):
        dilated = cv2.dilate(expected, np.ones((3, 3), np.uint8))
        fill = foreground & (expected == 0) & (dilated > 0)
        expected[fill] = dilated[fill]
    expected = expected.astype(np.int64)
    orphans, _ = ndi.label(foreground & (expected == 0))
    expected[orphans > 0] = orphans[orphans > 0] + count
    labels = instances_from_masks(interior, foreground, min_seed=1, min_size=1)
    assert count > 50 and np.array_equal(labels, expected)
    empty = np.zeros((0, 4), bool)
    assert instances_from_masks(empty, empty).shape == (0, 4)
