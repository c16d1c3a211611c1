"""What ASPP's image-pooling branch sees: the whole image, not one tile.

The branch summarises its whole input, so per tile it would differ and leave
seams. It is computed once, before the tiles, from a view of the whole image
(block-averaged to at most ``context_size`` pixels on its long side, i.e.
exactly the whole image up to that size; :func:`coarse_view`, or
:func:`upsampled_view` where the working grid is finer than the image) and
pinned for every tile (:func:`pin_image_pooling`). The views are made band by
band, so they never hold the whole image at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat

import cv2
import numpy as np
import torch

from .aspp import ASPPPooling
from .model import CompactDeepLab
from .normalize import percentile_range
from .rescale import Resampling, area_average

__all__ = ["coarse_view", "upsampled_view", "pin_image_pooling", "pooled_vectors"]

#: Dtypes cv2.resize takes directly.
_CV_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.float32, np.float64))


def _view_dtype(dtype: np.dtype) -> type:
    """float64 for float64 images (values may lie beyond float32), else float32."""
    return np.float64 if dtype == np.float64 else np.float32


@dataclass(frozen=True)
class _Grid:
    """The grid the network runs on: its shape, tiles and a whole-image view.

    ``read(rows, cols)`` returns a tile; ``coarse(size)`` the whole grid
    block-averaged to at most ``size`` pixels on its long side (what the
    image-pooling branch sees); ``value_range`` normalises both.
    """

    shape: tuple[int, int]
    read: Callable[[tuple[int, int], tuple[int, int]], np.ndarray]
    coarse: Callable[[int], np.ndarray]
    value_range: tuple[float, float]


#: Pixels per band of :func:`coarse_view` (a float64 copy of a band at a time).
_BAND_PIXELS = 1 << 22


def coarse_view(
    read_rows: Callable[[tuple[int, int]], np.ndarray],
    shape: tuple[int, int],
    size: int,
    dtype: np.dtype,
) -> np.ndarray:
    """A grid block-averaged to at most ``size`` pixels on its long side.

    ``read_rows((y0, y1))`` returns those rows of the grid (all columns; any
    leading channel axis). Blocks of ``factor`` x ``factor`` pixels (the
    remainder rows and columns dropped) are summed in float64 in a fixed
    order, band by band, so the view costs a band of memory, does not depend
    on the banding, and is the same for an image in memory and one read from
    disk. float32, or float64 for float64 grids (:func:`_view_dtype`).
    """
    height, width = shape
    factor = max(1, math.ceil(max(height, width) / size))
    fy, fx = min(factor, height), min(factor, width)
    hc, wc = height // fy, width // fx
    per_band = max(1, _BAND_PIXELS // (fy * width))  # block rows per band
    parts = []
    for r0 in range(0, hc, per_band):
        r1 = min(hc, r0 + per_band)
        band = np.asarray(read_rows((r0 * fy, r1 * fy)))[..., : wc * fx]
        blocks = band.astype(np.float64).reshape(*band.shape[:-2], r1 - r0, fy, wc, fx)
        parts.append(blocks.sum(axis=-1).sum(axis=-2) / (fy * fx))
    return np.concatenate(parts, axis=-2).astype(_view_dtype(np.dtype(dtype)))


def _array_grid(array: np.ndarray) -> _Grid:
    """A grid that is an array in memory (the image, or a coarser octave)."""
    return _Grid(
        shape=array.shape[-2:],
        read=lambda rows, cols: array[..., rows[0] : rows[1], cols[0] : cols[1]],
        coarse=lambda size: coarse_view(
            lambda rows: array[..., rows[0] : rows[1], :],
            array.shape[-2:],
            size,
            array.dtype,
        ),
        value_range=percentile_range(array),
    )


def upsampled_view(
    read_rows: Callable[[tuple[int, int]], np.ndarray],
    dtype: np.dtype,
    resampling: Resampling,
    size: int,
) -> np.ndarray:
    """The image-pooling view of an upsampled working grid, from the image.

    The working grid's shape divided by the integer factor that brings its
    long side to at most ``size``, area-averaged from the image itself
    (:func:`.rescale.area_average`, band by band: no full-size float copy,
    and the same for an image read from disk). An image smaller than that
    view (at most ``size`` pixels on its long side) is enlarged by OpenCV's
    ``INTER_AREA`` whole.
    """
    height, width = resampling.work_shape
    factor = max(1, math.ceil(max(height, width) / size))
    shape = (max(1, height // factor), max(1, width // factor))
    if shape[0] <= resampling.shape[0] and shape[1] <= resampling.shape[1]:
        view = area_average(read_rows, resampling.shape, shape)
    else:
        image = np.asarray(read_rows((0, resampling.shape[0])))
        source = image if image.dtype in _CV_DTYPES else image.astype(np.float32)
        view = cv2.resize(source, shape[::-1], interpolation=cv2.INTER_AREA)
    return view.astype(_view_dtype(np.dtype(dtype)), copy=False)


def _upsampled_grid(image: np.ndarray, resampling: Resampling) -> _Grid:
    """The working grid of an upsampling, made tile by tile from the image."""
    return _Grid(
        shape=resampling.work_shape,
        read=lambda rows, cols: resampling.work_tile(image, rows, cols),
        coarse=lambda size: upsampled_view(
            lambda rows: image[rows[0] : rows[1]], image.dtype, resampling, size
        ),
        value_range=percentile_range(image),
    )


def pooled_vectors(net: CompactDeepLab, batch: torch.Tensor) -> list[torch.Tensor]:
    """The image-pooling vectors of ``batch`` (the whole image's coarse view)."""
    with torch.inference_mode():
        *_, features = net.backbone(net.pad_to_stride(batch))
        return [pool.pool(features) for pool in _pools(net)]


def pin_image_pooling(net: CompactDeepLab, vectors: list[torch.Tensor] | None) -> None:
    """Pin the image-pooling branches to ``vectors`` (None: unpin)."""
    for pool, vector in zip(_pools(net), vectors or repeat(None)):
        pool.fixed = vector


def _pools(net: CompactDeepLab) -> list[ASPPPooling]:
    return [m for m in net.modules() if isinstance(m, ASPPPooling)]


@contextmanager
def _pinned_image_pooling(net: CompactDeepLab, batch: torch.Tensor) -> Iterator[None]:
    """Compute the image-pooling vectors once from the whole image and pin them."""
    pin_image_pooling(net, pooled_vectors(net, batch))
    try:
        yield
    finally:
        pin_image_pooling(net, None)
