"""Bringing an image to the nucleus size the network knows, and its maps back.

The network is trained on nuclei of one diameter (:data:`TRAINED_DIAMETER`,
give or take its scale augmentation). An image whose nuclei are ``d`` pixels
across is run at ``scale = trained / d``:

- ``scale < 1`` (large nuclei): ``k`` REDUCE steps of the Gaussian pyramid
  (octave ``k``, each halving the size after the Burt & Adelson blur), then a
  fractional resample by a factor in (0.5, 1] (OpenCV ``INTER_AREA``) to the
  exact size;
- ``scale > 1`` (small nuclei): a bilinear upsample.

Maps computed at that working grid come back to the image grid by bilinear
interpolation (probabilities; outlines stay smooth) or, for labels made on a
finer grid, by sampling at the image's pixel centres. Both use the exact
coordinate map of the forward resampling: REDUCE keeps sample ``2j`` (octave
pixel ``j`` sits on image pixel ``j * 2**k``) and OpenCV's resize aligns
pixel centres, so working pixel ``v`` sits at image pixel ``y`` with
``v = y * f / 2**k + (f - 1) / 2`` (``f``: the fractional factor per axis).

numpy and OpenCV only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.pyramid import reduce

__all__ = ["TRAINED_DIAMETER", "Resampling"]

#: Nucleus diameter (pixels) the shipped model is trained at; segmentation
#: resamples images to it.
TRAINED_DIAMETER = 20.0


@dataclass(frozen=True)
class Resampling:
    """The map between an image grid and the working grid of one scale.

    Attributes
    ----------
    shape : (int, int)
        The image's (height, width).
    scale : float
        Working size / image size (1: the image itself).
    octaves : int
        REDUCE steps before the fractional resample (0 when ``scale >= 1``).
    work_shape : (int, int)
        The working grid's (height, width).
    """

    shape: tuple[int, int]
    scale: float
    octaves: int
    work_shape: tuple[int, int]

    @classmethod
    def for_scale(cls, shape: tuple[int, int], scale: float) -> Resampling:
        """The resampling of an image of ``shape`` by ``scale`` (> 0)."""
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale}")
        height, width = (int(n) for n in shape)
        octaves = max(0, math.floor(math.log2(1.0 / scale) + 1e-9))
        rest = scale * 2.0**octaves  # the fractional factor, in (0.5, 1] or > 1
        octave = cls((height, width), float(scale), octaves, (height, width))
        work = tuple(max(1, round(n * rest)) for n in octave._octave_shape())
        return cls((height, width), float(scale), octaves, work)

    @property
    def identity(self) -> bool:
        return self.work_shape == self.shape

    def _octave_shape(self) -> tuple[int, int]:
        h, w = self.shape
        for _ in range(self.octaves):
            h, w = -(-h // 2), -(-w // 2)
        return h, w

    def _affine(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Per axis (y, x): working coordinate = factor * image coordinate + offset."""
        octave = self._octave_shape()
        step = 2.0**self.octaves
        out = []
        for n, m in zip(octave, self.work_shape, strict=True):
            f = m / n
            out.append((f / step, (f - 1.0) / 2.0))
        return out[0], out[1]

    def to_work(self, image: np.ndarray) -> np.ndarray:
        """``image`` (H, W) resampled to the working grid (a copy).

        float32, or float64 for float64 input, whose values may lie beyond
        float32's range.
        """
        image = np.asarray(image)
        work = image.astype(np.float64 if image.dtype == np.float64 else np.float32)
        if self.identity:
            return work  # astype made the copy
        for _ in range(self.octaves):
            work = reduce(work)
        if work.shape != self.work_shape:
            method = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
            work = cv2.resize(work, self.work_shape[::-1], interpolation=method)
        return work

    def map_to_image(self, work_map: np.ndarray) -> np.ndarray:
        """A float32 (h, w) map of the working grid, bilinearly on the image grid."""
        if self.identity:
            return work_map
        (fy, oy), (fx, ox) = self._affine()
        matrix = np.array([[fx, 0.0, ox], [0.0, fy, oy]], np.float64)
        return cv2.warpAffine(
            np.ascontiguousarray(work_map, np.float32),
            matrix,
            self.shape[::-1],
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def labels_to_image(self, labels: np.ndarray) -> np.ndarray:
        """Labels of a working grid sampled at the image's pixel centres."""
        if self.identity:
            return labels
        (fy, oy), (fx, ox) = self._affine()
        h, w = self.work_shape
        rows = np.clip(np.floor(np.arange(self.shape[0]) * fy + oy + 0.5), 0, h - 1)
        cols = np.clip(np.floor(np.arange(self.shape[1]) * fx + ox + 0.5), 0, w - 1)
        return labels[rows.astype(np.intp)[:, None], cols.astype(np.intp)[None, :]]
