"""Coarse-to-fine template search with zero-mean normalised cross-correlation.

The score is ZNCC (Pearson correlation between the template and an image
window), the quantity ``skimage.feature.match_template`` and OpenCV's
``TM_CCOEFF_NORMED`` compute: 1 for a perfect match up to brightness and contrast,
-1 for a perfect negative. It is undefined where the template or the image window
is flat (zero variance); this module never reports a score for such a window.

:func:`zncc_map` scores every position (exhaustive search). :func:`find_template`
gets the same peak far faster, the way Burt & Adelson proposed using a pyramid for
search [1]_ and Tanimoto for hierarchical template matching [2]_: build Gaussian
pyramids of the image and of the template, score every position only at the
coarsest octave (where the image has ``4**L`` times fewer pixels and the template
too), keep the best few local maxima there, and refine each octave by octave,
scoring only a small window around ``2 * position`` at every finer octave. At
octave 0 the scores are exact ZNCC values, equal to the exhaustive map's.

Octave ``k`` pixel ``j`` sits on level-0 pixel ``j * 2**k`` (DESIGN.md), so a
candidate at ``p`` in octave ``k + 1`` lands near ``2 p`` in octave ``k``.

References
----------
.. [1] P. J. Burt and E. H. Adelson, "The Laplacian Pyramid as a Compact Image
   Code", IEEE Trans. Communications 31(4), 532-540, 1983.
.. [2] S. L. Tanimoto, "Template matching in pyramids", Computer Graphics and
   Image Processing 16(4), 356-369, 1981.
.. [3] J. P. Lewis, "Fast Normalized Cross-Correlation", Vision Interface, 1995
   (window sums from integral images).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from napari_pyramids.core.checks import (
    as_real_array,
    check_finite,
    normalize_channel_axis,
)
from napari_pyramids.core.pyramid import gaussian_pyramid
from napari_pyramids.progress import Cancel, Progress, drive

__all__ = ["Match", "OctaveTrace", "find_template", "iter_find_template", "zncc_map"]

#: A window whose standard deviation is below this fraction of its RMS value is
#: flat to float32 precision: its ZNCC is undefined and it is never reported.
FLAT_TOLERANCE = 1e-5


#: Candidates scoring within this much ZNCC of an octave's best are all followed:
#: noise and blur can reorder scores that close when the octave gets finer.
MARGIN = 0.2

#: Most candidates followed from one octave to the next, per CROWD_AREA pixels
#: of the image (look-alikes are expected in proportion to the area searched).
#: Where more than that score within MARGIN of the best at the coarsest octave
#: (repetitive texture like bricks, star fields), that octave cannot tell them
#: apart and the search starts one octave finer, down to octave 0 (exhaustive)
#: if need be. ``max_matches`` above half of it raises it.
MAX_CANDIDATES = 48
CROWD_AREA = 512 * 512

#: Smallest template side at the coarsest octave when ``levels`` is None (the
#: pyramids' default); MARGIN and MAX_CANDIDATES keep it reliable (see the
#: agreement study of benchmarks/bench_search.py).
SEARCH_MIN_SIZE = 8


@dataclass(frozen=True)
class OctaveTrace:
    """The candidates a search kept at one octave.

    Attributes
    ----------
    octave : int
        Pyramid level ``k`` (0 is the image itself).
    scale : tuple of int
        Level-0 pixels per pixel of this octave along each spatial axis (``2**k``,
        or 1 for an axis that is not reduced, like z of an anisotropic stack).
        Position ``p`` here is level-0 position ``p * scale``.
    positions : numpy.ndarray
        ``(n, ndim)`` integer top-left corners of the template, in this
        octave's pixels.
    scores : numpy.ndarray
        ``(n,)`` ZNCC of each candidate at this octave.
    parents : numpy.ndarray
        ``(n,)`` index of the coarser octave's candidate each one was refined
        from (-1 at the coarsest octave, searched exhaustively).
    """

    octave: int
    scale: tuple[int, ...]
    positions: np.ndarray
    scores: np.ndarray
    parents: np.ndarray


@dataclass(frozen=True)
class Match:
    """One place where the template was found.

    Attributes
    ----------
    position : tuple of int
        ``(row, col)`` (``(z, row, col)`` for volumes) of the template's top-left
        corner in image pixels: the index of the peak of
        ``skimage.feature.match_template(image, template)``.
    score : float
        ZNCC at that position, in [-1, 1].
    shape : tuple of int
        Spatial shape of the template, so the match box is
        ``position .. position + shape``.
    trace : tuple of OctaveTrace
        The candidates examined at each octave, coarsest first, shared by all
        matches of one search; the last entry is octave 0.
    """

    position: tuple[int, ...]
    score: float
    shape: tuple[int, ...]
    trace: tuple[OctaveTrace, ...] = field(repr=False)

    @property
    def center(self) -> tuple[float, ...]:
        """Centre of the match box in image pixel coordinates."""
        return tuple(p + (s - 1) / 2 for p, s in zip(self.position, self.shape))


# ----------------------------------------------------------------- checking
class _Layout:
    """Views user arrays as ``(z, y, x, channels)``; z has length 1 for 2-D."""

    def __init__(self, image: np.ndarray, template: np.ndarray, channel_axis):
        if image.ndim != template.ndim:
            raise ValueError(
                f"image has {image.ndim} dimensions but template has "
                f"{template.ndim}; cut the template from an image like the one "
                "searched (same axes, same channels)"
            )
        ndim = image.ndim
        channel_axis = normalize_channel_axis(channel_axis, ndim)
        if (
            channel_axis is not None
            and image.shape[channel_axis] != template.shape[channel_axis]
        ):
            raise ValueError(
                f"image has {image.shape[channel_axis]} channels but template "
                f"has {template.shape[channel_axis]}; they must match"
            )
        self.channel_axis = channel_axis
        self.ndim = ndim - (channel_axis is not None)
        if self.ndim not in (2, 3):
            raise ValueError(
                f"expected a 2-D (y, x) image or a 3-D (z, y, x) volume, optionally "
                f"with a channel_axis; got {ndim} dimensions"
                + ("" if channel_axis is None else " including channels")
                + ". Pass channel_axis for colour images, or take one frame."
            )
        self.image_shape = self.spatial_shape(image)
        self.template_shape = self.spatial_shape(template)
        for ax, (n, t) in enumerate(zip(self.image_shape, self.template_shape)):
            if t > n:
                raise ValueError(
                    f"the template {self.template_shape} is larger than the image "
                    f"{self.image_shape} along spatial axis {ax} ({t} > {n}); cut a "
                    "smaller template or search a larger image"
                )

    def spatial_shape(self, arr: np.ndarray) -> tuple[int, ...]:
        return tuple(n for ax, n in enumerate(arr.shape) if ax != self.channel_axis)

    def internal(self, arr: np.ndarray) -> np.ndarray:
        """``(z, y, x, c)`` view of an array in the user's layout."""
        if self.channel_axis is None:
            arr = arr[..., None]
        else:
            arr = np.moveaxis(arr, self.channel_axis, -1)
        return arr if self.ndim == 3 else arr[None]

    def public(self, position) -> tuple[int, ...]:
        """User-facing spatial position from an internal ``(z, y, x)`` one."""
        return tuple(int(p) for p in position[3 - self.ndim :])


#: Largest magnitudes outside this range are brought back into [1, 2) before
#: scoring: float32 sums of squares overflow beyond about 1e19 and lose
#: everything to underflow below about 1e-19.
_SAFE_PEAK = (2.0**-40, 2.0**40)


def _scale_invariant(x: np.ndarray) -> np.ndarray:
    """``x`` times the power of two that brings its largest magnitude into [1, 2),
    when that magnitude is out of :data:`_SAFE_PEAK`; else ``x`` itself.

    ZNCC does not change when an input is multiplied by a positive number, and
    a power of two changes no rounding, so scores are those of the unscaled
    data where float32 could hold its sums. 8- and 16-bit images never need it.
    """
    if x.dtype.itemsize <= 2 and np.issubdtype(x.dtype, np.integer):
        return x
    peak = max(abs(float(x.max())), abs(float(x.min())))
    if not math.isfinite(peak) or peak == 0 or _SAFE_PEAK[0] <= peak < _SAFE_PEAK[1]:
        return x  # NaN and inf are reported by the finite checks
    floats = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    return np.ldexp(floats, -math.floor(math.log2(peak)))


def _template_scorer(template: np.ndarray) -> _Scorer:
    """Scorer for the level-0 template; raise if it is flat (ZNCC undefined)."""
    scorer = _Scorer(template)
    if scorer.flat:
        raise ValueError(
            "template is flat (constant, or varying by less than "
            f"{FLAT_TOLERANCE:g} of its magnitude): zero-mean normalised "
            "cross-correlation is undefined for a template without variance. "
            "Pick a region with some texture or edges."
        )
    return scorer


def _is_flat(std, rms):
    return std <= FLAT_TOLERANCE * rms


# ---------------------------------------------------------------- ZNCC maths
def _window_moments(x: np.ndarray, shape: tuple[int, int, int]):
    """Sums of ``x`` and ``x**2`` over every ``shape`` window of ``x``.

    ``x`` is ``(Z, H, W, C)`` float32; channels are summed. OpenCV's integral
    images accumulate in float64 [3]_ (one pass gives both), then each (y, x)
    window is four lookups and z windows are differences of a running sum.
    """
    tz, th, tw = shape
    z, h, w, n_ch = x.shape

    def windows(ii):
        out = ii[th:, tw:] - ii[:-th, tw:]
        out -= ii[th:, :-tw]
        out += ii[:-th, :-tw]
        return out

    if z == 1 and n_ch == 1:  # one grey plane: no sums to add up
        plane = np.ascontiguousarray(x[0, :, :, 0])
        sums, squares = cv2.integral2(plane, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
        return windows(sums)[None], windows(squares)[None]
    out = np.zeros((2, z, h - th + 1, w - tw + 1))
    for k in range(z):
        for c in range(n_ch):
            plane = np.ascontiguousarray(x[k, :, :, c])
            for i, ii in enumerate(
                cv2.integral2(plane, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
            ):
                out[i, k] += windows(ii)
    if tz > 1:
        run = np.concatenate([np.zeros_like(out[:, :1]), out.cumsum(axis=1)], 1)
        out = run[:, tz:] - run[:, :-tz]
    return out[0], out[1]


def _correlate(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid cross-correlation of 2-D (or ``(h, w, c)``, channels summed) float32.

    OpenCV's ``matchTemplate`` works in the Fourier domain; for one channel and
    a kernel of at most 10x10 the direct ``filter2D`` is about twice as fast.
    """
    th, tw = kernel.shape[:2]
    if kernel.ndim == 2 and th * tw <= 100:
        full = cv2.filter2D(
            plane, cv2.CV_32F, kernel, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT
        )
        return full[: plane.shape[0] - th + 1, : plane.shape[1] - tw + 1]
    return cv2.matchTemplate(plane, kernel, cv2.TM_CCORR)


def _ccorr(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Valid cross-correlation of ``(Z, H, W, C)`` float32 arrays, summed over z, c."""
    tz = template.shape[0]
    n_ch = image.shape[-1]
    out = None
    # One channel goes as a 2-D plane (so _correlate may filter directly); cv2
    # sums up to 4 channels itself; more go one by one.
    if n_ch == 1:
        groups = [0]
    elif n_ch <= 4:
        groups = [slice(None)]
    else:
        groups = [slice(c, c + 1) for c in range(n_ch)]
    for z in range(image.shape[0] - tz + 1):
        plane = None
        for dz in range(tz):
            for g in groups:
                r = _correlate(
                    np.ascontiguousarray(image[z + dz][..., g]),
                    np.ascontiguousarray(template[dz][..., g]),
                )
                plane = r if plane is None else plane + r
        if out is None:
            out = np.empty((image.shape[0] - tz + 1,) + plane.shape, np.float32)
        out[z] = plane
    return out


class _Scorer:
    """ZNCC of one (internal-layout) template against image regions.

    The numerator is OpenCV's plain cross-correlation (``TM_CCORR``) of the
    centred region with the zero-mean template, summed over channels and z
    planes (colour and volumes are correlated jointly, as skimage does; OpenCV's
    ``TM_CCOEFF_NORMED`` would centre each channel on its own mean). The window
    variances come from float64 integral images, which also tell which windows are
    flat. For small templates this is several times faster than
    ``TM_CCOEFF_NORMED``, whose normalisation pass dominates there.
    """

    def __init__(self, template: np.ndarray):
        t = template.astype(np.float64)
        rms = np.sqrt(np.mean(t * t))
        t -= t.mean()
        self.shape = template.shape[:3]
        self.size = t.size
        self.zero_mean = t.astype(np.float32)
        self.norm = float(np.sqrt(np.sum(t * t)))
        self.std = self.norm / np.sqrt(self.size)
        #: True when this template is flat to float32 precision (ZNCC undefined)
        self.flat = _is_flat(self.std, rms)
        #: one grey plane: many candidates can be refined in one call
        self.plain = template.shape[0] == 1 and template.shape[-1] == 1

    def __call__(self, region: np.ndarray) -> np.ndarray:
        """ZNCC at every valid position of ``region``; NaN where a window is flat
        (standard deviation below FLAT_TOLERANCE x the region's RMS value).

        The region's mean is removed first: it changes no score (the template
        sums to zero) and keeps float32 correlation and variance free of
        cancellation for images with a large offset.
        """
        mean = float(region.mean(dtype=np.float64))
        r = np.subtract(region, mean, dtype=np.float32)
        mean_square = float(np.vdot(r, r)) / r.size + mean * mean
        s1, var = _window_moments(r, self.shape)
        s1 *= s1
        s1 /= self.size
        var -= s1  # n * variance of each window
        flat = var <= FLAT_TOLERANCE**2 * self.size * mean_square
        np.sqrt(var, out=var, where=~flat)
        var *= self.norm
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.divide(_ccorr(r, self.zero_mean), var)
        score[flat] = np.nan
        return np.clip(score, -1.0, 1.0, out=score)

    def best(self, region: np.ndarray):
        """``(index, score)`` of the best window of ``region`` that is not flat,
        or None where every window is flat."""
        scores = self(region)
        if np.isnan(scores).all():
            return None
        at = np.unravel_index(np.nanargmax(scores), scores.shape)
        return tuple(int(i) for i in at), float(scores[at])

    def survey(self, level: np.ndarray, count: int, least: int = 1):
        """Positions and scores of the best local maxima of the ZNCC map of a
        whole octave, best first, flat windows left out: all those within MARGIN
        of the best (at most ``count``), and at least ``least`` of them."""
        scores = self(level)
        positions = _local_maxima(scores, count)
        values = scores[tuple(positions.T)]
        keep = _shortlist(values, least, len(values))
        return positions[:keep], values[:keep]


def zncc_map(image, template, *, channel_axis: int | None = None) -> np.ndarray:
    """Exhaustive ZNCC of ``template`` at every position of ``image``.

    The same numbers as ``skimage.feature.match_template(image, template)``
    (``pad_input=False``), computed with OpenCV's correlation and integral images.

    Parameters
    ----------
    image, template : array_like
        2-D ``(y, x)`` or 3-D ``(z, y, x)`` arrays, optionally with a colour axis.
    channel_axis : int, optional
        Colour axis of both arrays; channels are correlated jointly (one mean over
        all channels, as skimage does for an ``(h, w, c)`` template).

    Returns
    -------
    numpy.ndarray
        float32 map with spatial shape ``image - template + 1``; entry ``p`` scores
        the template with its top-left corner at ``p``. Where the image window is
        flat the score is undefined and set to 0, as skimage does.

    Raises
    ------
    ValueError
        If the template is larger than the image, flat, or holds NaN.
    """
    image = as_real_array(image, "image")
    template = as_real_array(template, "template")
    layout = _Layout(image, template, channel_axis)
    check_finite(template, "template")
    check_finite(image, "image")
    image, template = _scale_invariant(image), _scale_invariant(template)
    scores = _template_scorer(layout.internal(template))(layout.internal(image))
    scores = np.nan_to_num(scores, nan=0.0).astype(np.float32)
    return scores[0] if layout.ndim == 2 else scores


# ------------------------------------------------------- coarse-to-fine search
def _local_maxima(scores: np.ndarray, count: int) -> np.ndarray:
    """``(z, y, x)`` positions of the ``count`` best local maxima, best first.

    A local maximum is at least as high as its 3x3x3 neighbours; undefined (NaN,
    flat-window) scores never are.
    """
    filled = scores.astype(np.float32)
    filled[np.isnan(filled)] = -np.inf
    kernel = np.ones((3, 3), np.uint8)
    grown = np.stack([cv2.dilate(plane, kernel) for plane in filled])
    if len(grown) > 1:  # extend the neighbourhood along z
        across = grown.copy()
        np.maximum(across[1:], grown[:-1], out=across[1:])
        np.maximum(across[:-1], grown[1:], out=across[:-1])
        grown = across
    peaks = (filled == grown) & np.isfinite(filled)
    flat_idx = np.flatnonzero(peaks)
    values = filled.flat[flat_idx]
    if len(flat_idx) > count:
        keep = np.argpartition(-values, count - 1)[:count]
        flat_idx, values = flat_idx[keep], values[keep]
    order = np.argsort(-values, kind="stable")
    return np.stack(np.unravel_index(flat_idx[order], scores.shape), axis=1)


def _suppress(positions, scores, shape, count):
    """Greedy non-maximum suppression: matches overlapping by more than half
    the template along every axis are one object; the best one stays."""
    half = np.maximum(np.asarray(shape) // 2, 1)
    kept = []
    for i in np.argsort(-scores, kind="stable"):
        if all(np.any(np.abs(positions[i] - positions[j]) >= half) for j in kept):
            kept.append(i)
            if len(kept) == count:
                break
    return kept


def iter_find_template(
    image,
    template,
    *,
    max_matches: int = 1,
    min_score: float | None = None,
    levels: int | None = None,
    candidates: int = 12,
    refine_radius: int = 3,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = SEARCH_MIN_SIZE,
) -> Iterator[OctaveTrace]:
    """:func:`find_template` as a generator: yields each octave's trace as it is
    done (coarsest first) and returns the list of matches.

    Widgets use it to report progress and to be cancelled between octaves.
    """
    image = as_real_array(image, "image")
    template = as_real_array(template, "template")
    layout = _Layout(image, template, channel_axis)
    check_finite(template, "template")
    image, template = _scale_invariant(image), _scale_invariant(template)
    _template_scorer(layout.internal(template))
    for name, value, least in (
        ("max_matches", max_matches, 1),
        ("candidates", candidates, 1),
        ("refine_radius", refine_radius, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be a whole number, got {value!r}")
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")
    if min_score is not None and not -1 <= min_score <= 1:
        raise ValueError(f"min_score must lie in [-1, 1] (ZNCC), got {min_score}")

    kw = dict(channel_axis=channel_axis, reduce_z=reduce_z and layout.ndim == 3)
    # The template decides the depth: its coarsest octave keeps >= min_size px.
    tpl_levels = gaussian_pyramid(template, levels, min_size=min_size, **kw)
    scorers = [_Scorer(layout.internal(t)) for t in tpl_levels]
    while len(scorers) > 1 and scorers[-1].flat:
        scorers.pop()  # pure fine texture is flat when reduced: start finer
    img_levels = gaussian_pyramid(image, len(scorers), **kw)
    img_levels = [layout.internal(level) for level in img_levels]
    factor = np.array([2 if kw["reduce_z"] else 1, 2, 2])
    count = max(candidates, 2 * max_matches)

    area = max(float(np.prod(layout.image_shape[-2:])) / CROWD_AREA, 1.0)
    most = max(round(MAX_CANDIDATES * area), count)
    top = len(scorers) - 1
    while True:
        positions, values = scorers[top].survey(img_levels[top], most + 1, count)
        if not len(values):
            raise ValueError(
                "every window of the image is flat (constant), so zero-mean "
                "normalised cross-correlation is undefined everywhere; search an "
                "image with texture"
            )
        if len(values) <= most or top == 0:
            break
        top -= 1  # too many look-alikes to follow: search one octave finer
    positions, values = positions[:most], values[:most]
    parents = np.full(len(positions), -1)
    trace = []
    for k in range(top, -1, -1):
        if k < top:
            positions, values, parents = _refine(
                img_levels[k], scorers[k], positions * factor, refine_radius
            )
            keep = _shortlist(values, 2 * max_matches, most)
            positions, values, parents = positions[:keep], values[:keep], parents[:keep]
        octave = OctaveTrace(
            octave=k,
            scale=layout.public(factor**k),
            positions=np.asarray(positions, dtype=int)[:, 3 - layout.ndim :],
            scores=values.astype(np.float64),
            parents=parents,
        )
        trace.append(octave)
        yield octave

    trace = tuple(trace)
    shape = layout.template_shape
    final = trace[-1]
    ok = np.ones(len(final.scores), bool)
    if min_score is not None:
        ok = final.scores >= min_score
    idx = np.flatnonzero(ok)
    kept = _suppress(final.positions[idx], final.scores[idx], shape, max_matches)
    return [
        Match(
            position=tuple(int(v) for v in final.positions[idx[i]]),
            score=float(final.scores[idx[i]]),
            shape=shape,
            trace=trace,
        )
        for i in kept
    ]


def _climb(level, scorer, start, radius, last):
    """Best position near ``start``: score the window of +-``radius`` around it,
    and while the best lies on the window's edge (and not the image's), move the
    window there and score again. Returns ``(position, score)``, or None where
    every window in reach is flat.
    """
    centre = [min(max(int(s), 0), n) for s, n in zip(start, last)]
    best = None
    for _ in range(_MAX_CLIMBS):
        lo = [max(c - radius, 0) for c in centre]
        hi = [min(c + radius, n) for c, n in zip(centre, last)]
        region = level[tuple(slice(a, b + t) for a, b, t in zip(lo, hi, scorer.shape))]
        found = scorer.best(region)
        if found is None:
            return best
        at, value = found
        if best is not None and value <= best[1]:
            return best
        pos = tuple(a + i for a, i in zip(lo, at))
        best = (pos, value)
        on_edge = [
            (i == 0 and a > 0) or (i == b - a and b < n)
            for i, a, b, n in zip(at, lo, hi, last)
        ]
        if not any(on_edge):
            return best
        centre = pos
    return best


#: Most window moves of one candidate's hill climb (each moves >= 1 pixel).
_MAX_CLIMBS = 4


def _shortlist(values, least: int, most: int) -> int:
    """How many of the ``values`` (sorted best first) to follow: those within
    MARGIN of the best, but at least ``least`` and at most ``most``."""
    close = int(np.count_nonzero(values >= values[0] - MARGIN)) if len(values) else 0
    return min(max(close, least), most)


def _refine(level, scorer, starts, radius):
    """Refine each start by a hill climb (:func:`_climb`); deduplicated, best first.

    Grey 2-D searches climb all starts at once (:func:`_climb_together`);
    starts it cannot settle (windows at the image border, a flat winner) climb
    one by one.
    """
    last = [n - t for n, t in zip(level.shape[:3], scorer.shape)]
    found = [None] * len(starts)
    alone = range(len(starts))
    if scorer.plain and len(starts) > 1 and min(last[1:]) >= 2 * radius:
        alone = _climb_together(level, scorer, np.asarray(starts), radius, last, found)
    for i in alone:
        found[i] = _climb(level, scorer, starts[i], radius, last)
    best: dict[tuple, tuple[float, int]] = {}
    for parent, result in enumerate(found):
        if result is None:
            continue  # flat everywhere here: no score, no candidate
        pos, value = result
        if pos not in best or best[pos][0] < value:
            best[pos] = (value, parent)
    ranked = sorted(best.items(), key=lambda item: -item[1][0])
    positions = np.array([p for p, _ in ranked], dtype=int).reshape(-1, 3)
    values = np.array([v for _, (v, _) in ranked], dtype=np.float64)
    parents = np.array([i for _, (_, i) in ranked], dtype=int)
    return positions, values, parents


def _climb_together(level, scorer, starts, radius, last, found) -> list[int]:
    """Hill-climb many starts of a grey 2-D search with one OpenCV call per step.

    Every start's ``(2 radius + 1)``-wide window of positions is cut from the
    octave (shifted inward at the image border, so all have one size) and the
    cuts are laid side by side: one ZNCC map of the strip scores all windows,
    and scores of positions straddling two cuts are ignored. (Side by side, not
    stacked: the maps are then 2r+1 long rows, which numpy walks fast.) As in
    :func:`_climb`, a start whose best lies on its window's edge moves there and
    climbs again. Fills ``found[i] = (position, score)`` and returns the indices
    of starts left to :func:`_climb` (every window of the first cut flat).
    """
    plane = level[0, :, :, 0]
    _, th, tw = scorer.shape
    width = 2 * radius + 1
    cut_h, cut_w = width + th - 1, width + tw - 1
    windows = np.lib.stride_tricks.sliding_window_view(plane, (cut_h, cut_w))
    last = np.array(last[1:])
    centre = np.clip(starts[:, 1:], 0, last)
    best_value = np.full(len(starts), -np.inf)
    best_pos = np.zeros((len(starts), 2), int)
    todo = np.arange(len(starts))
    for _ in range(_MAX_CLIMBS):
        n = len(todo)
        lo = np.clip(centre[todo] - radius, 0, last - 2 * radius)
        cuts = windows[lo[:, 0], lo[:, 1]]  # (n, cut_h, cut_w)
        strip = cuts.transpose(1, 0, 2).reshape(cut_h, n * cut_w)
        scores = np.full((width, n * cut_w), -np.inf)
        scores[:, : n * cut_w - tw + 1] = scorer(strip[None, :, :, None])[0]
        scores[np.isnan(scores)] = -np.inf
        scores = scores.reshape(width, n, cut_w)[:, :, :width].transpose(1, 0, 2)
        scores = scores.reshape(n, width * width)
        flat_idx = scores.argmax(axis=1)
        at = np.stack(np.divmod(flat_idx, width), axis=1)
        value = scores[np.arange(n), flat_idx]
        better = value > best_value[todo]
        best_value[todo[better]] = value[better]
        best_pos[todo[better]] = lo[better] + at[better]
        on_edge = ((at == 0) & (lo > 0)) | (
            (at == width - 1) & (lo < last - 2 * radius)
        )
        moving = better & on_edge.any(axis=1)
        centre[todo[moving]] = best_pos[todo[moving]]
        todo = todo[moving]
        if not len(todo):
            break
    settled = np.isfinite(best_value)
    for i in np.flatnonzero(settled):
        y, x = best_pos[i]
        found[i] = ((0, int(y), int(x)), float(best_value[i]))
    return [int(i) for i in np.flatnonzero(~settled)]


def find_template(
    image,
    template,
    *,
    max_matches: int = 1,
    min_score: float | None = None,
    levels: int | None = None,
    candidates: int = 12,
    refine_radius: int = 3,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = SEARCH_MIN_SIZE,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> list[Match]:
    """Find ``template`` in ``image`` coarse-to-fine; best matches first.

    The coarsest octave is searched exhaustively, its best ``candidates`` local
    maxima are refined octave by octave within ``refine_radius`` pixels, and the
    octave-0 scores (exact ZNCC) are ranked. On a 2048x2048 image with a 64x64
    template this is tens of times faster than exhaustive search and finds the
    exhaustive peak in the benchmark's agreement study (benchmarks/bench_search.py).

    Parameters
    ----------
    image : array_like
        2-D ``(y, x)`` image or 3-D ``(z, y, x)`` volume, optionally with colour.
    template : array_like
        What to look for: same number of dimensions and channels, not larger than
        ``image``, not flat.
    max_matches : int
        Most matches to return. Matches overlapping by more than half the template
        along every axis count as one (non-maximum suppression).
    min_score : float, optional
        Drop matches whose ZNCC is below this value in [-1, 1].
    levels : int, optional
        Pyramid levels used, level 0 included (1 is exhaustive search). ``None``
        reduces until the template's smallest side would drop below ``min_size``.
    candidates : int
        Fewest candidates followed from the coarsest octave (at least
        ``2 * max_matches``); all those scoring within MARGIN of the best are
        followed too, up to MAX_CANDIDATES per 512x512 pixels of the image.
    refine_radius : int
        Half-width of the window scored around each candidate at finer octaves.
    channel_axis : int, optional
        Colour axis of image and template (scored jointly, as skimage does).
    reduce_z : bool
        Reduce z as well (isotropic volumes); by default z keeps its resolution.
    min_size : int
        Smallest template side kept at the coarsest octave when ``levels`` is None.
    progress : callable(done, total), optional
        Called after each octave is searched (the coarsest first).
    cancel : callable() -> bool, optional
        Checked between octaves; True stops the search and raises
        :class:`napari_pyramids.progress.Cancelled`.

    Returns
    -------
    list of Match
        At most ``max_matches``, best score first. Each carries the search trace.

    Raises
    ------
    ValueError
        Template larger than the image, flat template (ZNCC undefined), image
        flat everywhere, NaN values, or parameters out of range.
    """
    search = iter_find_template(
        image,
        template,
        max_matches=max_matches,
        min_score=min_score,
        levels=levels,
        candidates=candidates,
        refine_radius=refine_radius,
        channel_axis=channel_axis,
        reduce_z=reduce_z,
        min_size=min_size,
    )
    searched = []

    def count(trace: OctaveTrace) -> tuple[int, int]:  # the coarsest comes first
        searched.append(trace.octave)
        return len(searched), searched[0] + 1

    return drive(search, progress, cancel, count=count)
