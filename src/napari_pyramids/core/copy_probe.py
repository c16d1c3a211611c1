"""The first look of a one-scale search: is the template in the image unchanged?

A template cut from the searched image (or found there as it is: a duplicated
tile, a frame of a static scene) scores a ZNCC of 1 where it lies, and no window
can score more. Once a candidate reaches ``1 - SAME_PEAK`` the search is over,
with no check: nothing can beat it by more than "same peak" allows. Finding such
a candidate needs only a ranking that puts it among the best few (DESCENT) at a
coarse octave, not the calibrated bound of the search proper, so the probe ranks
on a cheaper pyramid than the Gaussian one:

- each octave is the mean of 2x2 pixels of the one below (a box pyramid,
  OpenCV's ``INTER_AREA``), so the image goes to the start octave in one pass at
  memory speed (on a 2048x2048 float32 image about 1.3 ms, where the Gaussian
  REDUCE takes about 2 ms for its first octave alone);
- a block of a box octave is the box-reduced block of the image below it, so
  the finer octaves are computed only where the candidates are refined.

Where no candidate reaches ``1 - SAME_PEAK`` (noise, another view, another
image), :func:`~napari_pyramids.core.search.iter_find_template` goes on with
the search proper on the Gaussian pyramid, and the probe has cost its one pass
and a few small windows.
"""

from __future__ import annotations

import cv2
import numpy as np

from napari_pyramids.core.checks import check_finite
from napari_pyramids.core.pyramid import float_dtype
from napari_pyramids.core.search_engine import (
    DESCENT,
    _local_maxima,
    _Scorer,
    _Search,
)

__all__ = ["find_copy"]

#: dtypes OpenCV's INTER_AREA takes as they are; others become floats first
_RESIZABLE = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def box_reduce(block: np.ndarray, factor) -> np.ndarray:
    """Means of ``factor`` = ``(fz, fy, fx)`` blocks of a ``(Z, H, W, C)`` array
    (what is left over at the far ends is dropped), as ``(Z // fz, H // fy,
    W // fx, C)`` in the input's dtype (floats for dtypes OpenCV cannot
    resize; means over z in float)."""
    fz, fy, fx = (int(f) for f in factor)
    z, h, w = block.shape[0] // fz, block.shape[1] // fy, block.shape[2] // fx
    work = block[: z * fz, : h * fy, : w * fx]
    if work.dtype not in _RESIZABLE or fz > 1:
        work = work.astype(float_dtype(work.dtype), copy=False)
    if fz > 1:
        work = work.reshape((z, fz) + work.shape[1:]).mean(axis=1, dtype=work.dtype)
    planes = [cv2.resize(plane, (w, h), interpolation=cv2.INTER_AREA) for plane in work]
    return np.stack(planes).reshape(z, h, w, block.shape[-1])


class _BoxOctave:
    """Octave ``factor`` of an image's box pyramid, computed where it is read:
    ``octave[z0:z1, y0:y1, x0:x1]`` box-reduces the level-0 block under it (the
    access a candidate's hill climb makes)."""

    def __init__(self, image: np.ndarray, factor):
        self.image = image
        self.factor = tuple(int(f) for f in factor)
        self.shape = tuple(n // f for n, f in zip(image.shape[:3], self.factor))
        self.shape += image.shape[3:]

    def __getitem__(self, index) -> np.ndarray:
        if len(index) != 3 or not all(isinstance(s, slice) for s in index):
            raise TypeError("a box octave is read as [z0:z1, y0:y1, x0:x1]")
        block = tuple(
            slice(s.start * f, s.stop * f) for s, f in zip(index, self.factor)
        )
        return box_reduce(self.image[block], self.factor)


def _start_level(image: np.ndarray, factor) -> np.ndarray:
    """The whole box octave ``factor`` of ``image``, float32 or float64; raises
    if the image holds NaN or infinite values (every pixel is in a block mean of
    that octave, but for the far ends it drops, which are checked alone)."""
    level = box_reduce(image, factor)
    level = level.astype(float_dtype(level.dtype), copy=False)
    if np.issubdtype(image.dtype, np.floating):
        ends = [
            image[(slice(None),) * ax + (slice(n - n % f, None),)]
            for ax, (n, f) in enumerate(zip(image.shape[:3], factor))
        ]
        if not np.isfinite(level).all() or not all(np.isfinite(e).all() for e in ends):
            check_finite(image, "image")
    return level


def find_copy(image, template, layout, depth: int, factor, options: dict):
    """``(trace, matches)`` of a search that ends on a copy of ``template`` in
    ``image`` (internal ``(Z, H, W, C)`` arrays; ``depth`` octaves from the
    template's plan, ``factor`` per axis and octave, ``options`` those of
    :class:`~napari_pyramids.core.search_engine._Search`), or None where the
    best DESCENT candidates of the box pyramid's start octave, followed down one
    at a time, reach no score that nothing can beat (or cannot: more matches
    asked for than candidates followed)."""
    if options["max_matches"] > DESCENT:
        return None
    factor = np.asarray(factor)
    scorers = [_Scorer(template, rough=False)]
    for k in range(1, depth):
        scorer = _Scorer(box_reduce(template, factor**k), rough=True)
        if scorer.flat:  # fine texture is flat when reduced
            break
        scorers.append(scorer)
    top = len(scorers) - 1
    if top == 0:
        return None
    coarse_level = _start_level(image, factor**top)
    levels = [image] + [_BoxOctave(image, factor**k) for k in range(1, top)]
    search = _Search(levels + [coarse_level], layout, factor, **options)
    coarse = scorers[top](coarse_level)
    positions = _local_maxima(coarse, DESCENT)
    if not len(positions):
        return None  # flat everywhere at this octave: the search proper decides
    steps = search.descend(scorers, top, positions)
    if steps is None:
        return None
    values = coarse[tuple(positions.T)].astype(np.float64)
    start = (positions, values, np.full(len(values), -1))
    first = search.trace(top, *start, np.ones(len(values)))
    trace = [first] + [
        search.trace(k, *step, np.ones(len(step[1])))
        for k, step in zip(range(top - 1, -1, -1), steps)
    ]
    return trace, search.matches(tuple(trace), lambda _: scorers[0])
