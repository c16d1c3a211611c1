"""Bringing an image to the nucleus size the network knows, and its maps back.

The network is trained on nuclei of one diameter (:data:`TRAINED_DIAMETER`,
give or take its scale augmentation). An image whose nuclei are ``d`` pixels
across is run at ``scale = trained / d``:

- ``scale < 1`` (large nuclei): ``k`` REDUCE steps of the Gaussian pyramid
  (octave ``k``, each halving the size after the Burt & Adelson blur), then a
  fractional resample by a factor in (0.5, 1] (an area average, as OpenCV's
  ``INTER_AREA``) to the exact size;
- ``scale > 1`` (small nuclei): a bilinear upsample.

Maps computed at that working grid come back to the image grid by bilinear
interpolation (probabilities; outlines stay smooth) or, for labels made on a
finer grid, by sampling at the image's pixel centres. Both use the exact
coordinate map of the forward resampling: REDUCE keeps sample ``2j`` (octave
pixel ``j`` sits on image pixel ``j * 2**k``) and the resamples align pixel
centres, so working pixel ``v`` sits at image pixel ``y`` with
``v = y * f / 2**k + (f - 1) / 2`` (``f``: the fractional factor per axis).

The fractional area average and the bilinear way back are computed per axis
from global coordinates (:meth:`Resampling.work_window`,
:meth:`Resampling.image_window`), so a window of either equals that part of
the whole result exactly: whole-slide segmentation
(:mod:`napari_pyramids.nn.whole_slide`) makes them block by block and gets the
labels of the in-memory path.

numpy and OpenCV only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.pyramid import reduce

__all__ = ["TRAINED_DIAMETER", "Resampling", "area_average"]

#: Nucleus diameter (pixels) the shipped model is trained at; segmentation
#: resamples images to it.
TRAINED_DIAMETER = 20.0

#: Rows or columns ``(start, stop)`` of a grid.
Span = tuple[int, int]
#: ``read(rows, cols)``: part of a grid (any leading axes), e.g. from disk.
Reader = Callable[[Span, Span], np.ndarray]


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
        if work.shape == self.work_shape:
            return work
        if self.scale > 1:
            return cv2.resize(
                work, self.work_shape[::-1], interpolation=cv2.INTER_LINEAR
            )
        return self.work_window(_reader(work), *_whole(self.work_shape))

    def work_window(self, read_octave: Reader, rows: Span, cols: Span) -> np.ndarray:
        """Rows and columns of the working grid of a reduction, from its octave.

        ``read_octave(rows, cols)`` returns part of the octave (the image after
        :attr:`octaves` REDUCE steps, float). The fractional resample is an area
        average (each working pixel the mean of the octave area it covers, as
        OpenCV's ``INTER_AREA``), computed per axis from global coordinates, so
        any window equals that part of the whole grid bit for bit: whole-slide
        segmentation makes the working grid block by block.
        """
        octave = self._octave_shape()
        weights = [
            _area_weights(n, m, span)
            for n, m, span in zip(octave, self.work_shape, (rows, cols), strict=True)
        ]
        return _separable(read_octave, weights)

    def map_to_image(self, work_map: np.ndarray) -> np.ndarray:
        """A float32 (h, w) map of the working grid, bilinearly on the image grid."""
        if self.identity:
            return work_map
        return self.image_window(_reader(work_map), *_whole(self.shape))

    def image_window(self, read_work: Reader, rows: Span, cols: Span) -> np.ndarray:
        """Image rows and columns of a working-grid map, bilinearly (float32).

        ``read_work(rows, cols)`` returns part of the map (``(..., h, w)``:
        several maps at once). Each image pixel is interpolated from the two
        working pixels either side of its working position per axis (the edge
        pixel repeated beyond the grid), with weights from its global
        coordinate, so any window equals that part of :meth:`map_to_image`
        bit for bit.
        """
        weights = [
            self._linear_weights(axis, span) for axis, span in enumerate((rows, cols))
        ]
        return _separable(read_work, weights, np.float32)

    def _linear_weights(
        self, axis: int, span: tuple[int, int]
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """Working pixels and weights that interpolate image pixels ``span``."""
        factor, offset = self._affine()[axis]
        last = self.work_shape[axis] - 1
        position = np.arange(*span) * factor + offset
        below = np.floor(position)
        frac = (position - below).astype(np.float32)
        below = below.astype(np.intp)
        idx = np.clip(np.stack([below, below + 1], axis=1), 0, last)
        weights = np.stack([np.float32(1) - frac, frac], axis=1)
        return int(idx.min()), idx, weights

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


def _reader(array: np.ndarray) -> Reader:
    """A ``read(rows, cols)`` of an array in memory."""
    return lambda rows, cols: array[..., rows[0] : rows[1], cols[0] : cols[1]]


def _whole(shape: tuple[int, int]) -> tuple[Span, Span]:
    """The rows and columns of a whole grid of ``shape``."""
    return (0, shape[0]), (0, shape[1])


#: Pixels per band of :func:`area_average` (a float64 copy of a band at a time).
_BAND_PIXELS = 1 << 22


def area_average(
    read_rows: Callable[[tuple[int, int]], np.ndarray],
    shape: tuple[int, int],
    out_shape: tuple[int, int],
) -> np.ndarray:
    """An image area-averaged down to ``out_shape`` (float64), band by band.

    ``read_rows((y0, y1))`` returns those rows of the image (all columns).
    Each output pixel is the mean of the image area it covers (OpenCV's
    ``INTER_AREA`` for shrinking), computed per axis from global coordinates
    in a fixed order, so the result does not depend on the banding: the
    same for an image in memory and one read from disk. Only for shrinking
    (``out_shape <= shape`` on both axes).
    """
    (n_y, n_x), (m_y, m_x) = shape, out_shape
    if m_y > n_y or m_x > n_x:
        raise ValueError(f"area_average shrinks: {out_shape} is larger than {shape}")
    _, idx_x, w_x = _area_weights(n_x, m_x, (0, m_x))
    per_band = max(1, _BAND_PIXELS // max(1, math.ceil(n_y / m_y) * n_x))
    parts = []
    for j0 in range(0, m_y, per_band):
        lo, idx_y, w_y = _area_weights(n_y, m_y, (j0, min(m_y, j0 + per_band)))
        band = np.asarray(read_rows((lo, int(idx_y.max()) + 1))).astype(np.float64)
        parts.append(
            _apply_axis(_apply_axis(band, idx_x, w_x, -1), idx_y - lo, w_y, -2)
        )
    return np.concatenate(parts, axis=-2)


def _area_weights(
    n: int, m: int, span: tuple[int, int]
) -> tuple[int, np.ndarray, np.ndarray]:
    """Source pixels and weights of an area average of ``n`` samples to ``m``.

    Output pixel ``j`` of ``span`` averages the source interval
    ``[j n / m, (j + 1) n / m)``; a pixel partly inside counts by the part
    inside. Returns the first source pixel used, and per output pixel the
    source indices and weights (padded with weight 0 to one width).
    """
    step = n / m
    out = np.arange(*span)
    start, stop = out * step, (out + 1) * step
    first = np.floor(start).astype(np.intp)
    width = math.ceil(step) + 1
    idx = first[:, None] + np.arange(width)
    overlap = np.minimum(stop[:, None], idx + 1) - np.maximum(start[:, None], idx)
    weights = np.clip(overlap, 0.0, None) / step
    idx = np.minimum(idx, n - 1)  # padding past the end has weight 0
    return int(first.min()), idx, weights


def _separable(read, weights, dtype=None) -> np.ndarray:
    """Resample the window that ``weights`` (per axis, as :func:`_area_weights`
    gives them) reads, axis by axis (y, then x)."""
    (lo_y, idx_y, w_y), (lo_x, idx_x, w_x) = weights
    part = np.asarray(read((lo_y, int(idx_y.max()) + 1), (lo_x, int(idx_x.max()) + 1)))
    if dtype is not None:
        part = part.astype(dtype, copy=False)
    return _apply_axis(_apply_axis(part, idx_y - lo_y, w_y, -2), idx_x - lo_x, w_x, -1)


def _apply_axis(
    part: np.ndarray, idx: np.ndarray, weights: np.ndarray, axis: int
) -> np.ndarray:
    """``sum_t weights[:, t] * part[idx[:, t]]`` along ``axis`` (-2 or -1).

    Elementwise operations term by term in a fixed order, so each output
    value depends only on its own inputs and weights (never on the window it
    is part of). Leading axes (map channels) are carried along.
    """
    shape = [1] * part.ndim
    shape[axis] = -1
    weights = weights.astype(part.dtype, copy=False)
    out = np.take(part, idx[:, 0], axis=axis) * weights[:, 0].reshape(shape)
    for t in range(1, idx.shape[1]):
        out += np.take(part, idx[:, t], axis=axis) * weights[:, t].reshape(shape)
    return out
