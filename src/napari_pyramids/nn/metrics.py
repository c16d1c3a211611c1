"""Instance segmentation scores as the field reports them (DSB 2018, StarDist).

True and predicted nuclei are matched one to one (Hungarian assignment on
their IoU), a pair counting as a true positive when its IoU is at least the
threshold ``t``. At each ``t``:

- AP (the DSB / StarDist "average precision") = TP / (TP + FP + FN);
- F1 = 2 TP / (2 TP + FP + FN).

mAP is the mean of AP over ``t`` = 0.50, 0.55, ..., 0.95. Scores are given
*pooled* (TP, FP, FN summed over all images first: every nucleus counts once)
and *per image* (the mean of each image's score: every image counts once).
numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "IOU_THRESHOLDS",
    "Counts",
    "Scores",
    "instance_overlaps",
    "match_counts",
    "score_images",
]

#: The IoU thresholds of DSB 2018's metric: 0.50 to 0.95 in steps of 0.05.
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def instance_overlaps(
    true: np.ndarray, pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel overlaps between the instances of two label images.

    Returns ``inter`` and ``iou``, (n_true, n_pred) arrays of the shared pixels
    and the intersection over union of each pair, and the instance areas
    ``area_true`` (n_true,) and ``area_pred`` (n_pred,). Instances are the
    nonzero labels present, in increasing order; the label values need not
    be consecutive.
    """
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(f"shapes differ: true {true.shape}, pred {pred.shape}")
    _, t = np.unique(true, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    t, p = t.ravel().astype(np.int64), p.ravel().astype(np.int64)
    t_has_bg, p_has_bg = bool((true == 0).any()), bool((pred == 0).any())
    n_t, n_p = int(t.max(initial=0)) + 1, int(p.max(initial=0)) + 1
    inter = np.bincount(t * n_p + p, minlength=n_t * n_p).reshape(n_t, n_p)
    inter = inter[int(t_has_bg) :, int(p_has_bg) :]
    area_t = np.bincount(t, minlength=n_t)[int(t_has_bg) :]
    area_p = np.bincount(p, minlength=n_p)[int(p_has_bg) :]
    iou = inter / (area_t[:, None] + area_p[None, :] - inter).clip(min=1)
    return inter, iou, area_t, area_p


def _matched(iou: np.ndarray, threshold: float) -> int:
    """Size of the largest one-to-one matching among pairs with IoU >= threshold.

    Ties in the count are broken by the larger total IoU (StarDist's cost).
    For ``threshold > 0.5`` each nucleus has at most one such partner, so the
    candidate pairs are the matching; the assignment runs only where a row or
    column has two candidates.
    """
    candidates = iou >= threshold
    if not candidates.any():
        return 0
    rows = candidates.any(axis=1)
    cols = candidates.any(axis=0)
    sub, cand = iou[np.ix_(rows, cols)], candidates[np.ix_(rows, cols)]
    if (cand.sum(axis=1) <= 1).all() and (cand.sum(axis=0) <= 1).all():
        return int(cand.sum())
    cost = -(cand + sub * cand / (2.0 * max(cand.shape)))
    r, c = linear_sum_assignment(cost)
    return int(cand[r, c].sum())


@dataclass(frozen=True)
class Counts:
    """TP / FP / FN of one image at each threshold of ``thresholds``."""

    thresholds: tuple[float, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @property
    def ap(self) -> np.ndarray:
        """TP / (TP + FP + FN) per threshold (1 where there is nothing to find)."""
        total = self.tp + self.fp + self.fn
        return np.where(total > 0, self.tp / np.maximum(total, 1), 1.0)

    @property
    def f1(self) -> np.ndarray:
        total = 2 * self.tp + self.fp + self.fn
        return np.where(total > 0, 2 * self.tp / np.maximum(total, 1), 1.0)


def match_counts(
    true: np.ndarray,
    pred: np.ndarray,
    thresholds: Sequence[float] = IOU_THRESHOLDS,
) -> Counts:
    """Match the nuclei of one image at each IoU threshold (>= 0.5)."""
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds or min(thresholds) < 0.5 or max(thresholds) > 1:
        raise ValueError(
            f"IoU thresholds must lie in [0.5, 1] (a matching is then one to one), "
            f"got {thresholds}"
        )
    _, iou, area_t, area_p = instance_overlaps(true, pred)
    tp = np.array([_matched(iou, t) for t in thresholds], np.int64)
    return Counts(thresholds, tp, len(area_p) - tp, len(area_t) - tp)


@dataclass
class Scores:
    """Pooled and per-image AP and F1 over a set of images.

    ``per_image`` holds each image's :class:`Counts` in the order given.
    """

    per_image: list[Counts] = field(default_factory=list)

    def add(self, counts: Counts) -> None:
        self.per_image.append(counts)

    def _pooled(self) -> Counts:
        first = self.per_image[0]
        return Counts(
            first.thresholds,
            sum(c.tp for c in self.per_image),
            sum(c.fp for c in self.per_image),
            sum(c.fn for c in self.per_image),
        )

    @property
    def thresholds(self) -> tuple[float, ...]:
        return self.per_image[0].thresholds

    def ap(self, threshold: float = 0.5, *, pooled: bool = True) -> float:
        """AP at one threshold, pooled or the mean over images."""
        i = self.thresholds.index(threshold)
        if pooled:
            return float(self._pooled().ap[i])
        return float(np.mean([c.ap[i] for c in self.per_image]))

    def f1(self, threshold: float = 0.5, *, pooled: bool = True) -> float:
        i = self.thresholds.index(threshold)
        if pooled:
            return float(self._pooled().f1[i])
        return float(np.mean([c.f1[i] for c in self.per_image]))

    def mean_ap(self, *, pooled: bool = True) -> float:
        """mAP: AP averaged over the thresholds (pooled, or per image then mean)."""
        if pooled:
            return float(self._pooled().ap.mean())
        return float(np.mean(self.image_mean_ap()))

    def image_mean_ap(self) -> np.ndarray:
        """Each image's mAP, in order."""
        return np.array([c.ap.mean() for c in self.per_image])

    def summary(self) -> dict[str, float]:
        """The numbers a table reports, pooled and per image."""
        return {
            "images": len(self.per_image),
            "nuclei": int(self._pooled().tp[0] + self._pooled().fn[0]),
            "ap50": self.ap(0.5),
            "ap75": self.ap(0.75),
            "map": self.mean_ap(),
            "f1_50": self.f1(0.5),
            "ap50_image": self.ap(0.5, pooled=False),
            "map_image": self.mean_ap(pooled=False),
        }


def score_images(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    thresholds: Sequence[float] = IOU_THRESHOLDS,
) -> Scores:
    """:class:`Scores` of ``(true, pred)`` label pairs."""
    scores = Scores()
    for true, pred in pairs:
        scores.add(match_counts(true, pred, thresholds))
    if not scores.per_image:
        raise ValueError("no images to score")
    return scores
