"""Instance metrics against small cases counted by hand."""

import numpy as np
import pytest

from napari_pyramids.nn.metrics import (
    IOU_THRESHOLDS,
    instance_overlaps,
    match_counts,
    score_images,
)


def _boxes(shape, boxes):
    labels = np.zeros(shape, np.int32)
    for value, (y0, y1, x0, x1) in boxes.items():
        labels[y0:y1, x0:x1] = value
    return labels


def test_overlaps_of_labels_with_gaps():
    true = _boxes((10, 10), {3: (0, 4, 0, 4), 9: (0, 4, 6, 10), 12: (7, 9, 7, 9)})
    pred = _boxes((10, 10), {5: (0, 4, 0, 4), 7: (0, 4, 6, 8), 1: (6, 7, 0, 3)})
    inter, iou, area_true, area_pred = instance_overlaps(true, pred)
    assert area_true.tolist() == [16, 16, 4] and area_pred.tolist() == [3, 16, 8]
    assert inter[0, 1] == 16 and inter[1, 2] == 8 and iou[1, 2] == 0.5
    with pytest.raises(ValueError, match="shapes differ"):
        instance_overlaps(true, pred[:5])


def test_ap_counts_a_pair_at_exactly_the_threshold():
    """Three true nuclei, three predictions, counted by hand.

    true 3 / pred 5: identical (IoU 1); true 9 / pred 7: half of it (IoU 0.5);
    pred 1 touches nothing; true 12 is missed.
    """
    true = _boxes((10, 10), {3: (0, 4, 0, 4), 9: (0, 4, 6, 10), 12: (7, 9, 7, 9)})
    pred = _boxes((10, 10), {5: (0, 4, 0, 4), 7: (0, 4, 6, 8), 1: (6, 7, 0, 3)})
    counts = match_counts(true, pred)
    # at 0.5 two pairs count; above it only the identical one
    assert counts.tp.tolist() == [2] + [1] * 9
    assert counts.fp.tolist() == [1] + [2] * 9
    assert counts.fn.tolist() == [1] + [2] * 9
    assert counts.ap[0] == pytest.approx(2 / 4)  # TP / (TP + FP + FN)
    assert counts.ap[1] == pytest.approx(1 / 5)
    assert counts.f1[0] == pytest.approx(4 / 6)
    assert IOU_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_matching_is_one_to_one_at_iou_one_half():
    """Two predictions each cover half of one nucleus (IoU 0.5 both): one counts."""
    true = _boxes((4, 8), {1: (0, 4, 0, 8)})
    pred = _boxes((4, 8), {1: (0, 4, 0, 4), 2: (0, 4, 4, 8)})
    counts = match_counts(true, pred, thresholds=(0.5,))
    assert (counts.tp[0], counts.fp[0], counts.fn[0]) == (1, 1, 0)


def test_one_prediction_over_two_nuclei_matches_one():
    """A prediction that is exactly two equal nuclei has IoU 0.5 with each.

    That is the only way a prediction can reach IoU 0.5 with two disjoint
    nuclei; one-to-one matching gives it one partner: TP 1, FP 0, FN 1.
    """
    true = _boxes((4, 12), {1: (0, 4, 0, 6), 2: (0, 4, 6, 12)})
    pred = _boxes((4, 12), {1: (0, 4, 0, 12)})
    counts = match_counts(true, pred, thresholds=(0.5, 0.55))
    assert counts.tp.tolist() == [1, 0] and counts.fn.tolist() == [1, 2]
    assert counts.fp.tolist() == [0, 1]


def test_pooled_and_per_image_scores():
    """Image 1: 1 of 1 found (AP 1); image 2: 1 of 3 found, no false positive."""
    one = _boxes((8, 8), {1: (0, 4, 0, 4)})
    three = _boxes((8, 8), {1: (0, 2, 0, 2), 2: (4, 6, 0, 2), 3: (4, 6, 4, 6)})
    found = _boxes((8, 8), {1: (0, 2, 0, 2)})
    scores = score_images([(one, one), (three, found)])
    assert scores.ap(0.5) == pytest.approx(2 / 4)  # pooled: TP 2, FN 2
    assert scores.ap(0.5, pooled=False) == pytest.approx((1 + 1 / 3) / 2)
    assert scores.mean_ap() == pytest.approx(0.5)  # every pair is exact
    assert scores.f1(0.5) == pytest.approx(4 / 6)
    summary = scores.summary()
    assert summary["images"] == 2 and summary["nuclei"] == 4
    assert scores.image_mean_ap().tolist() == pytest.approx([1.0, 1 / 3])


def test_empty_images_and_bad_thresholds():
    empty = np.zeros((5, 5), np.uint8)
    counts = match_counts(empty, empty)
    assert (counts.ap == 1).all()  # nothing to find, nothing found
    spurious = empty.copy()
    spurious[1:3, 1:3] = 4
    assert (match_counts(empty, spurious).ap == 0).all()
    with pytest.raises(ValueError, match=r"\[0.5, 1\]"):
        match_counts(empty, empty, thresholds=(0.3,))
    with pytest.raises(ValueError, match="no images"):
        score_images([])
