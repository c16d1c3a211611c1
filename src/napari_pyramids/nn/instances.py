"""From per-pixel class probabilities to instance labels.

The model predicts background / core / rim. The rim separates the cores of
touching nuclei, so the connected components of the core are one seed per
nucleus; each seed then grows back over its predicted rim (a marker-based
region growing: the seeded-watershed idea restricted to the foreground band,
which costs a few dilations instead of a priority flood and scales to
gigapixel images).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import cv2
import numpy as np

from .defaults import GROW, MIN_SEED, MIN_SIZE

__all__ = ["components", "grow_seeds", "instances_from_masks", "smallest_uint"]

_FLOAT_EXACT = 2**24  # float32 holds every integer label below this exactly


def smallest_uint(labels: np.ndarray, count: int) -> np.ndarray:
    """``labels`` cast to the smallest unsigned dtype that holds ``count``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if count <= np.iinfo(dtype).max:
            return labels.astype(dtype, copy=False)
    return labels.astype(np.uint64, copy=False)


def components(mask: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """4-connected components of a bool mask: labels (int32), count, areas.

    ``areas[k]`` is the pixel count of component ``k`` (``areas[0]``: the
    rest). Numbered in raster order, as ``scipy.ndimage.label`` numbers them.
    """
    if not mask.size:  # OpenCV does not take empty images
        return np.zeros(mask.shape, np.int32), 0, np.zeros(1, np.int64)
    mask = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask, connectivity=4, ltype=cv2.CV_32S
    )
    return labels, n - 1, stats[:, cv2.CC_STAT_AREA]


def _grow_rows(
    seeds: np.ndarray,
    foreground: np.ndarray,
    out: np.ndarray,
    rows: tuple[int, int],
    grow: int,
) -> np.ndarray:
    """Grow ``seeds`` over ``foreground``; write rows ``rows`` of the result.

    Works on the rows plus ``grow`` rows either side: a pixel's label after
    ``grow`` dilations depends only on pixels within ``grow`` of it, so the
    rows written equal those of growing the whole image. Returns the label
    areas in those rows (``np.bincount``).
    """
    y0, y1 = rows
    top, bottom = max(0, y0 - grow), min(len(seeds), y1 + grow)
    grown = grow_seeds(
        seeds[top:bottom].astype(out.dtype), foreground[top:bottom], grow
    )
    out[y0:y1] = grown[y0 - top : y1 - top]
    return np.bincount(out[y0:y1].ravel().astype(np.int64, copy=False))


def grow_seeds(grown: np.ndarray, foreground: np.ndarray, grow: int) -> np.ndarray:
    """Grow the seed ids in ``grown`` (in place) ``grow`` steps over ``foreground``.

    Each step gives every unlabelled foreground pixel the largest id among
    its 8 neighbours, if any (a 3x3 max filter): where two nuclei meet, the
    higher id wins. ``grown`` is uint16 or float32 (what ``cv2.dilate``
    takes). A pixel's result depends only on the pixels within ``grow`` of
    it, so a window grown alone is exact ``grow`` pixels in from its cut
    edges.
    """
    todo = foreground & (grown == 0)
    fill = np.empty_like(todo)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(grow):
        dilated = cv2.dilate(grown, kernel)
        np.logical_and(todo, dilated > 0, out=fill)
        if not fill.any():  # every reachable rim pixel is labelled
            break
        np.copyto(grown, dilated, where=fill)
        todo ^= fill
    return grown


def instances_from_masks(
    interior: np.ndarray,
    foreground: np.ndarray,
    *,
    grow: int = GROW,
    min_size: int = MIN_SIZE,
    min_seed: int = MIN_SEED,
) -> np.ndarray:
    """Instance labels from the core (``interior``) and foreground masks.

    Parameters
    ----------
    interior, foreground : ndarray of bool (H, W)
        Pixels predicted as nucleus core, and as not background (core or rim).
    grow : int
        How far (pixels, 8-connected) seeds grow into the foreground: the rim
        around a predicted core is up to half a nucleus radius wide.
    min_size : int
        Instances with fewer pixels are dropped (noise, debris). Foreground
        blobs that contain no seed but reach this size become instances of
        their own (small nuclei whose core was not predicted).
    min_seed : int
        Core components with fewer pixels seed nothing: a speck of core
        probability inside a large, textured nucleus would otherwise split it.
        (Measured on held-out generated images and the real DSB 2018 sample of
        benchmarks/bench_segment.py: 4 removes most splits and costs few small
        nuclei, which the foreground still gives as orphan blobs.)

    Returns
    -------
    ndarray
        Labels 0..n in the smallest unsigned dtype that holds n.

    Notes
    -----
    Growth runs in bands of rows on all CPU cores (OpenCV and NumPy release
    the GIL); each band overlaps its neighbours by ``grow`` rows, so the
    result does not depend on the banding.
    """
    seeds, count, areas = components(interior)
    if min_seed > 1 and (areas[1:] < min_seed).any():
        # Dropped seeds leave gaps in the numbering; the final relabelling
        # below closes them (they grow nothing, so they have no pixels).
        small = areas < min_seed
        small[0] = False
        seeds[small[seeds]] = 0
    if count >= _FLOAT_EXACT:
        raise ValueError(f"{count} seeds: too many to grow exactly in float32")
    # cv2.dilate takes uint16 or float32 (exact for integers below 2**24)
    grown = np.empty(seeds.shape, np.uint16 if count <= 0xFFFF else np.float32)
    height = len(seeds)
    step = max(4 * grow, 256)
    bands = [(y, min(y + step, height)) for y in range(0, height, step)]
    grow_band = partial(_grow_rows, seeds, foreground, grown, grow=grow)
    cpus = (
        len(os.sched_getaffinity(0))  # the cores this process may use
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count() or 1
    )
    with ThreadPoolExecutor(max(1, min(len(bands), cpus))) as pool:
        band_areas = list(pool.map(grow_band, bands))
    del seeds, grow_band
    sizes = np.zeros(count + 1, np.int64)
    for band in band_areas:
        sizes[: len(band)] += band
    orphans, extra, orphan_sizes = components(foreground & (grown == 0))
    sizes = np.concatenate([sizes, orphan_sizes[1:]])
    keep = sizes >= max(min_size, 1)  # dropped seeds have no pixels
    keep[0] = False
    kept = int(keep.sum())
    lookup = np.zeros(count + extra + 1, np.int64)
    lookup[keep] = np.arange(1, kept + 1)
    lookup = smallest_uint(lookup, kept)
    labels = np.empty(grown.shape, lookup.dtype)
    for y0, y1 in bands:  # band by band: no full-size temporaries
        band = lookup[grown[y0:y1].astype(np.intp)]
        orphan = orphans[y0:y1]
        found = orphan > 0
        band[found] = lookup[orphan[found] + count]
        labels[y0:y1] = band
    return labels
