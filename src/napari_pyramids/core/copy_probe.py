"""The first look of a one-scale search: is the template in the image unchanged?

A template cut from the searched image (or found there as it is: a duplicated
tile, a frame of a static scene) scores a ZNCC of 1 where it lies, and no window
can score more. Once a candidate reaches ``1 - SAME_PEAK`` the search is over,
with no check: nothing can beat it by more than "same peak" allows. Finding such
a candidate needs only a ranking that puts it among the best few (PROBED) at a
coarse octave, not the calibrated bound of the search proper, so the probe ranks
on a cheaper pyramid than the Gaussian one and skips the octaves between:

- the start octave is the mean of ``2**k x 2**k`` blocks of the image (a box
  pyramid's octave ``k``, OpenCV's ``INTER_AREA``), made in one pass at memory
  speed (on a 2048x2048 float32 image about 1.3 ms, where the Gaussian REDUCE
  takes about 2 ms for its first octave alone);
- block means place the template's corner within a block and a half of its
  block's corner, so each candidate is scored exactly at octave 0 over that
  window, in one call, instead of being refined octave by octave.

Where no candidate reaches ``1 - SAME_PEAK`` (noise, another view, another
image), :func:`~napari_pyramids.core.search.iter_find_template` goes on with
the search proper on the Gaussian pyramid, and the probe has cost its one pass
and a few windows.
"""

from __future__ import annotations

import cv2
import numpy as np

from napari_pyramids.core.checks import check_finite
from napari_pyramids.core.pyramid import float_dtype
from napari_pyramids.core.search_engine import _local_maxima, _Search
from napari_pyramids.core.search_inputs import in_safe_range
from napari_pyramids.core.zncc import _Scorer

__all__ = ["find_copy"]

#: Candidates of the start octave scored at octave 0, one at a time: the best
#: two find nearly every copy, and each further one costs an octave-0 window
#: in every search of an image that holds none (docs/search_calibration.md).
PROBED = 2

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


def _start_level(image: np.ndarray, factor) -> np.ndarray:
    """The box octave ``factor`` of ``image``, float32 or float64; raises if the
    image holds NaN or infinite values (every pixel is in a block mean of that
    octave, but for the far ends it drops, which are checked alone)."""
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


def _window(image, scorer, corner, reach):
    """``(lo, region)``: the part of ``image`` that holds every placement of
    the template whose corner lies within ``reach`` of ``corner`` (clipped to
    the image), and its first corner."""
    last = [n - t for n, t in zip(image.shape[:3], scorer.shape)]
    lo = [min(max(c - r, 0), n) for c, r, n in zip(corner, reach, last)]
    hi = [min(max(c + r, 0), n) for c, r, n in zip(corner, reach, last)]
    region = image[tuple(slice(a, b + t) for a, b, t in zip(lo, hi, scorer.shape))]
    return np.array(lo), region


def find_copy(image, template, layout, depth: int, factor, options: dict, *, exact):
    """``(trace, matches)`` of a search that ends on a copy of ``template`` in
    ``image`` (internal ``(Z, H, W, C)`` arrays; ``depth`` octaves from the
    template's plan, ``factor`` per axis and octave, ``options`` those of
    :class:`~napari_pyramids.core.search_engine._Search`, ``exact`` the
    template's level-0 scorer, which the search proper uses too), or None where the
    best PROBED candidates of the box start octave, each scored exactly at
    octave 0 over the window its block leaves open, reach no score that nothing
    can beat (or cannot: more matches asked for than candidates scored)."""
    if options["max_matches"] > PROBED or depth < 2:
        return None
    block = np.asarray(factor) ** (depth - 1)
    coarse = _Scorer(box_reduce(template, block), rough=True)
    if coarse.flat:  # fine texture is flat in block means: the search proper
        return None
    level = _start_level(image, block)
    scores = coarse(level)
    starts = _local_maxima(scores, PROBED)
    search = _Search([image], layout, factor, **options)
    reach = [(3 * int(b)) // 2 for b in block]  # a block and a half
    found = []
    for i, start in enumerate(starts):
        lo, region = _window(image, exact, start * block, reach)
        if not in_safe_range(region):
            continue  # the search proper scales the image first
        window = exact(region)
        if not np.isnan(window).all():
            at = np.unravel_index(np.nanargmax(window), window.shape)
            found.append((lo + at, float(window[at]), i, (window, at)))
        if not found:
            continue
        positions = np.array([f[0] for f in found], dtype=int)
        values = np.array([f[1] for f in found])
        parents = np.array([f[2] for f in found])
        if search.settled((positions, values, parents), exact):
            values0 = scores[tuple(starts.T)].astype(np.float64)
            octaves = [
                (depth - 1, starts, values0, np.full(len(starts), -1)),
                (0, positions, values, parents),
            ]
            trace = tuple(search.trace(*o, np.ones(len(o[2]))) for o in octaves)

            def known(j):  # the windows scored above hold the neighbours
                return found[j][3]

            return trace, search.matches(trace, lambda _: exact, known=known)
    return None
