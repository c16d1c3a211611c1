"""Percentile normalisation: any dtype and range in, about [0, 1] out."""

from __future__ import annotations

import numpy as np

__all__ = ["percentile_range", "normalize", "sample_step"]

_SAMPLE = 4_000_000  # pixels looked at to estimate the percentiles


def percentile_range(
    image: np.ndarray, low: float = 1.0, high: float = 99.8
) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles of ``image``.

    Large images are subsampled on a regular grid (at most about four million
    pixels), which estimates the percentiles of a microscope image to well
    under one grey level at a fraction of the cost.
    """
    step = sample_step(image.size)
    sample = image[..., ::step, ::step]
    lo, hi = np.percentile(sample, (low, high))
    return float(lo), float(hi)


def sample_step(size: int) -> int:
    """The grid step of :func:`percentile_range`'s sample of ``size`` pixels.

    Every ``step``-th row and column from 0; a sample taken this way from an
    image that is not in memory gives the same percentiles.
    """
    return max(1, int(np.sqrt(size / _SAMPLE)))


def normalize(
    image: np.ndarray, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """``(image - lo) / (hi - lo)`` as a new float32 array.

    ``value_range`` defaults to :func:`percentile_range` (1st and 99.8th
    percentiles), so uint8, uint16 and float images of any scale look alike
    to the network. A constant image maps to zeros. Values are not clipped:
    the network has seen the bright tail above 1 in training.
    """
    lo, hi = percentile_range(image) if value_range is None else value_range
    scale = 1.0 / (hi - lo) if hi > lo else 0.0
    if image.dtype == np.float64 or not _fits_float32(lo, hi):
        # values beyond float32's range (1e40, say) are scaled before the cast
        return ((image - lo) * scale).astype(np.float32)
    out = image.astype(np.float32)  # always a copy: the caller's array stays as it is
    out -= np.float32(lo)
    out *= np.float32(scale)
    return out


def _fits_float32(*values: float) -> bool:
    limit = float(np.finfo(np.float32).max) / 4
    return all(abs(v) < limit for v in values)
