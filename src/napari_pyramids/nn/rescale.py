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

    def work_tile(
        self, image: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]
    ) -> np.ndarray:
        """Rows and columns of the working grid of an upsampling, from ``image``.

        The same values as ``to_work(image)[y0:y1, x0:x1]`` (bilinear, pixel
        centres aligned) without making the whole working grid, so an image
        upsampled for small nuclei costs memory by the tile. Only for
        upsamplings (``scale > 1``).
        """
        if self.scale <= 1:
            raise ValueError("work_tile is for upsamplings; use to_work")
        (fy, oy), (fx, ox) = self._affine()
        (y0, y1), (x0, x1) = rows, cols
        # the image window the tile reads from, a pixel wider for interpolation
        top = max(0, math.floor((y0 - oy) / fy) - 1)
        left = max(0, math.floor((x0 - ox) / fx) - 1)
        bottom = min(self.shape[0], math.ceil((y1 - oy) / fy) + 2)
        right = min(self.shape[1], math.ceil((x1 - ox) / fx) + 2)
        window = np.asarray(image[top:bottom, left:right])
        window = window.astype(np.float64 if window.dtype == np.float64 else np.float32)
        # tile pixel (j, i) reads image pixel ((y0 + j - oy) / fy, (x0 + i - ox) / fx)
        matrix = np.array(
            [[1 / fx, 0.0, (x0 - ox) / fx - left], [0.0, 1 / fy, (y0 - oy) / fy - top]]
        )
        return cv2.warpAffine(
            window,
            matrix,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def image_span(self, axis: int, start: int, stop: int) -> tuple[int, int]:
        """The image rows (axis 0) or columns (1) whose working position is in
        ``[start, stop)``: consecutive spans of working pixels give a partition
        of the image's."""
        factor, offset = self._affine()[axis]
        n = self.shape[axis]
        lo = min(n, max(0, math.ceil((start - offset) / factor - 1e-9)))
        hi = min(n, max(0, math.ceil((stop - offset) / factor - 1e-9)))
        if stop >= self.work_shape[axis]:
            hi = n
        if start <= 0:
            lo = 0
        return lo, hi

    def tile_to_image(
        self,
        tile_map: np.ndarray,
        origin: tuple[int, int],
        rows: tuple[int, int],
        cols: tuple[int, int],
    ) -> np.ndarray:
        """A float32 map of one working tile, bilinearly on image rows x cols.

        ``origin`` is the tile's top-left working pixel; ``rows`` and ``cols``
        the image span (:meth:`image_span`) of its kept part.
        """
        (fy, oy), (fx, ox) = self._affine()
        (ya, yb), (xa, xb) = rows, cols
        matrix = np.array(
            [[fx, 0.0, fx * xa + ox - origin[1]], [0.0, fy, fy * ya + oy - origin[0]]]
        )
        return cv2.warpAffine(
            np.ascontiguousarray(tile_map, np.float32),
            matrix,
            (xb - xa, yb - ya),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
