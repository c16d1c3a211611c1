"""The machinery of coarse-to-fine ZNCC search, shared by one-scale and
scale-range search.

The candidates an octave keeps (:class:`OctaveTrace`) and the matches a search
reports (:class:`Match`); the image's pyramid; candidate following and
refinement by hill climbs; and the check of the winner against the coarse map.
The scores come from :mod:`~napari_pyramids.core.zncc`, the sub-pixel peaks
from :mod:`~napari_pyramids.core.subpixel`. :mod:`napari_pyramids.core.search`
holds the public functions and explains the method; ``scale_search`` reuses
this module for a range of template scales.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from napari_pyramids.core.checks import check_finite
from napari_pyramids.core.pyramid import float_dtype, gaussian_pyramid
from napari_pyramids.core.subpixel import _subpixel
from napari_pyramids.core.zncc import _rough_variance, centred

__all__ = ["Match", "OctaveTrace"]


#: Candidates scoring within this much ZNCC of an octave's best are all followed:
#: noise and blur can reorder scores that close when the octave gets finer. The
#: check at octave 0 (:func:`doubt_margin`) catches what this leaves behind.
FOLLOW = 0.1

#: Local maxima within this much of the best at the start octave are look-alikes
#: that octave cannot tell apart (see MAX_CANDIDATES).
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
        ``(n,)`` ZNCC of each candidate at this octave (in a search over scales,
        the ZNCC of its sub-pixel peak, by which scales are compared).
    parents : numpy.ndarray
        ``(n,)`` index of the coarser octave's candidate each one was refined
        from; -1 where the candidate comes from an exhaustive pass: the start
        octave's, a scale that starts at this octave, or (at octave 0) the check
        of the regions whose coarse score could still beat the winner.
    scales : numpy.ndarray
        ``(n,)`` template scale of each candidate (all 1 unless ``scales`` was
        given): the object in the image is this many times the template's size.
    examined : numpy.ndarray
        Every template scale scored at this octave, ascending (exhaustive starts
        and the trial scales of the refinement); ``[1.0]`` at one scale.
    """

    octave: int
    scale: tuple[int, ...]
    positions: np.ndarray
    scores: np.ndarray
    parents: np.ndarray
    scales: np.ndarray
    examined: np.ndarray


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
        Spatial shape of the template. The match box is ``position .. position
        + shape`` at scale 1; in general it is ``shape * scale`` pixels large.
    trace : tuple of OctaveTrace
        The candidates examined at each octave, coarsest first, shared by all
        matches of one search; the last entry is octave 0. A search that ends
        on an exact copy (:mod:`~napari_pyramids.core.copy_probe`) examined
        only its start octave and octave 0.
    subpixel : tuple of float
        The top-left corner to a fraction of a pixel: the vertex of a quadratic
        fitted to the ZNCC scores of ``position`` and its neighbours (within half
        a pixel of ``position``; equal to it along an axis where the peak lies
        on the image border).
    scale : float
        Size of the found object in the image / size of the template (1 unless
        ``scales`` was given; 0.5 for a template cut from a view twice as close).
    """

    position: tuple[int, ...]
    score: float
    shape: tuple[int, ...]
    trace: tuple[OctaveTrace, ...] = field(repr=False)
    subpixel: tuple[float, ...]
    scale: float = 1.0

    @property
    def size(self) -> tuple[float, ...]:
        """Size of the match box in image pixels: the template's times ``scale``."""
        return tuple(s * self.scale for s in self.shape)

    @property
    def center(self) -> tuple[float, ...]:
        """Centre of the match box in image pixel coordinates.

        Template pixel ``i`` sits on image pixel ``position + i * scale``, so the
        centre is ``position + (shape - 1) * scale / 2``.
        """
        return _centre(self.position, self.shape, self.scale)

    @property
    def subpixel_center(self) -> tuple[float, ...]:
        """:attr:`center` from the sub-pixel corner :attr:`subpixel`."""
        return _centre(self.subpixel, self.shape, self.scale)


def _centre(corner, shape, scale) -> tuple[float, ...]:
    return tuple(float(p) + (s - 1) * scale / 2 for p, s in zip(corner, shape))


def _local_maxima(scores: np.ndarray, count: int, floor: float = -np.inf) -> np.ndarray:
    """``(z, y, x)`` positions of the ``count`` best local maxima that score at
    least ``floor``, best first.

    A local maximum is at least as high as its 3x3x3 neighbours; undefined (NaN,
    flat-window) scores never are.
    """
    if scores.shape[0] == 1 and floor > -np.inf:
        above = np.flatnonzero(scores >= floor)
        if len(above) <= _FEW_ABOVE * scores.size:
            return _maxima_among(scores[0], above, count)
    filled, grown = _grown(scores)
    flat_idx = np.flatnonzero(filled == grown)
    values = filled.flat[flat_idx]
    defined = (values > -np.inf) & (values >= floor)  # -inf: flat all round
    flat_idx, values = flat_idx[defined], values[defined]
    return _best_first(flat_idx, values, count, scores.shape)


def _maxima_among(plane: np.ndarray, flat_idx: np.ndarray, count: int) -> np.ndarray:
    """:func:`_local_maxima` of a ``(h, w)`` map among the entries
    ``flat_idx`` (flat indices) only, each compared with its eight neighbours
    (NaN ones lose). A neighbour's index is clipped to the map, which can only
    land on the entry itself or on another of its neighbours."""
    h, w = plane.shape
    y, x = np.divmod(flat_idx, w)
    # np.minimum and np.maximum: np.clip's own overhead outweighs the work here
    ny = np.minimum(np.maximum(y[:, None] + _AROUND[0], 0), h - 1)
    nx = np.minimum(np.maximum(x[:, None] + _AROUND[1], 0), w - 1)
    values = plane.flat[flat_idx]
    peak = ~(plane[ny, nx] > values[:, None]).any(axis=1)
    return _best_first(flat_idx[peak], values[peak], count, (1, h, w))


#: (dy, dx) of the eight neighbours of a map entry
_AROUND = np.array([(-1, -1, -1, 0, 0, 1, 1, 1), (-1, 0, 1, -1, 1, -1, 0, 1)])


def _best_first(flat_idx, values, count: int, shape) -> np.ndarray:
    """Positions (rows of indices into ``shape``) of the ``count`` best of the
    entries ``flat_idx`` scoring ``values``, best first (ties in index order
    where all are kept)."""
    if len(flat_idx) > count:
        keep = np.argpartition(-values, count - 1)[:count]
        flat_idx, values = flat_idx[keep], values[keep]
    order = np.argsort(-values, kind="stable")
    flat_idx = flat_idx[order]
    positions = np.empty((len(flat_idx), len(shape)), np.intp)
    for axis in range(len(shape) - 1, -1, -1):  # the last axis varies fastest
        flat_idx, positions[:, axis] = np.divmod(flat_idx, shape[axis])
    return positions


#: :func:`_local_maxima` compares the entries above its floor with their
#: neighbours one by one where they are at most this fraction of the map
#: (cheaper than a dilation of the whole map), and dilates otherwise.
_FEW_ABOVE = 1 / 16


def _suppress(positions, scores, extent, count):
    """Greedy non-maximum suppression: matches overlapping by more than half
    their box along every axis are one object; the best one stays. ``extent``
    is the box size, one for all ``(ndim,)`` or one per match ``(n, ndim)``."""
    half = np.broadcast_to(np.asarray(extent, float) / 2, positions.shape)
    half = np.maximum(np.floor(half), 1)
    kept = []
    for i in np.argsort(-scores, kind="stable"):
        if all(np.any(np.abs(positions[i] - positions[j]) >= half[j]) for j in kept):
            kept.append(i)
            if len(kept) == count:
                break
    return kept


def image_levels(image, n: int, layout, reduce_z: bool = False) -> list[np.ndarray]:
    """The image's Gaussian pyramid, ``n`` levels in the internal layout; raises
    if the image holds NaN or infinite values.

    2-D images with at most 4 channels go straight through ``cv2.pyrDown``, the
    REDUCE step :func:`~napari_pyramids.core.pyramid.gaussian_pyramid` uses; a
    search has scaled huge values down already (:func:`prepared`) and does not
    need that function's bit-for-bit agreement between blocks and whole images,
    which costs a second pass per level. Every REDUCE weight is positive and
    every pixel feeds the next level, so a NaN anywhere ends up in the coarsest
    level: checking that one is checking the image. Volumes and more channels go
    through ``gaussian_pyramid``.
    """
    internal = layout.internal(image)
    if layout.ndim == 3 or internal.shape[-1] > 4:
        levels = gaussian_pyramid(
            image, n, channel_axis=layout.channel_axis, reduce_z=reduce_z
        )
        out = [layout.internal(level) for level in levels]
    else:
        plane = internal[0] if internal.shape[-1] > 1 else internal[0, ..., 0]
        work = plane.astype(float_dtype(plane.dtype), copy=False)
        out = [internal]
        for _ in range(1, n):
            work = cv2.pyrDown(work)
            out.append(work.reshape((1,) + work.shape[:2] + (-1,)))
    if np.issubdtype(out[-1].dtype, np.floating) and not np.isfinite(out[-1]).all():
        check_finite(image, "image")
    return out


def all_flat() -> ValueError:
    """The error for an image where every window is flat."""
    return ValueError(
        "every window of the image is flat (constant), so zero-mean normalised "
        "cross-correlation is undefined everywhere; search an image with texture"
    )


def doubt_margin(octave: int) -> float:
    """How much lower than its octave-0 ZNCC the score of a window can be at a
    start ``octave`` (3x3 neighbourhood maximum of the coarse map, see
    :meth:`_Search.check`).

    The margin stays above the largest difference measured on the benchmark's
    study cases (docs/search_calibration.md). A small template's coarse levels
    lack the image's context near their borders, and blur and sub-pixel
    misalignment grow with the octave, so the margin does too.
    """
    return DOUBT_MARGIN + DOUBT_GROWTH * max(octave - 3, 0)


#: :func:`doubt_margin` at octaves 1-3 and its growth per octave beyond.
DOUBT_MARGIN = 0.45
DOUBT_GROWTH = 0.15

#: Scores this close to the best possible (1) cannot be beaten by more than the
#: tolerance "same peak" allows, so a winner this good needs no check.
SAME_PEAK = 1e-4

#: When the windows left in doubt read more than this share of the image's
#: pixels, one exhaustive pass over the image is cheaper than many small ones.
EXHAUSTIVE_SHARE = 0.25


class _Search:
    """The steps of one coarse-to-fine search over an image pyramid, shared by
    searches at one scale and at many (:mod:`~napari_pyramids.core.scale_search`):
    the exhaustive start, the refinement from octave to octave, the check of the
    winner against the coarse map, the matches.
    """

    def __init__(
        self,
        img_levels,
        layout,
        factor,
        *,
        max_matches,
        min_score,
        count,
        refine_radius,
    ):
        self.levels = img_levels
        self.layout = layout
        self.factor = factor
        self.max_matches = max_matches
        self.min_score = min_score
        self.count = count
        self.radius = refine_radius
        area = max(float(np.prod(layout.image_shape[-2:])) / CROWD_AREA, 1.0)
        #: most candidates followed from one octave to the next
        self.most = max(round(MAX_CANDIDATES * area), count)

    def start(self, scorers):
        """Exhaustive pass at the coarsest octave that can tell the candidates
        apart: ``(octave, positions, scores, coarse ZNCC map)``."""
        top = len(scorers) - 1
        while True:
            coarse = scorers[top](self.levels[top])
            positions, values = _best_maxima(coarse, self.most + 1, self.count)
            if not len(values):
                raise all_flat()
            if len(values) <= self.most or top == 0:
                break
            top -= 1  # too many look-alikes to follow: search one octave finer
        return top, positions[: self.most], values[: self.most], coarse

    def refine(self, k, scorer, positions, least=None):
        """Candidates of the next coarser octave refined at octave ``k``: those
        within FOLLOW of the best, at least ``least`` (``2 * max_matches``)."""
        positions, values, parents = _refine(
            self.levels[k], scorer, positions * self.factor, self.radius
        )
        least = 2 * self.max_matches if least is None else least
        keep = _shortlist(values, least, self.most, FOLLOW)
        return positions[:keep], values[:keep], parents[:keep]

    def check(self, scorers, coarse, top, rest, found):
        """Octave-0 candidates ``found`` after the check that nothing was missed.

        Only a winner within SAME_PEAK of a perfect score needs none. Otherwise
        the start octave's look-alikes that were not followed (``rest``, within
        MARGIN but not FOLLOW of the best) are refined down to octave 0 too.
        Then every window whose coarse score (the maximum over its 3x3 coarse
        neighbourhood) is within :func:`doubt_margin` of the weakest match kept
        could still beat it at octave 0: those are scored at octave 0. What
        these steps find joins the candidates with parent -1.
        """
        if self.settled(found, scorers[0]):
            return found
        if len(rest):
            for k in range(top - 1, -1, -1):
                rest, values, _ = self.refine(k, scorers[k], rest)
            found = _merge(found, (rest, values, np.full(len(values), -1)))
            if self.settled(found, scorers[0]):
                return found
        threshold = self._reference(found[0], found[1], scorers[0].shape)
        more = _doubtful(
            self.levels[0],
            scorers[0],
            coarse,
            self.factor**top,
            threshold - doubt_margin(top),
            self.count,
        )
        return _merge(found, (more[0], more[1], np.full(len(more[1]), -1)))

    def settled(self, found, scorer) -> bool:
        """True when no window can beat the weakest match kept by SAME_PEAK."""
        return self._reference(found[0], found[1], scorer.shape) >= 1 - SAME_PEAK

    def _reference(self, positions, values, shape) -> float:
        """Score the check must protect: the weakest of the ``max_matches`` best
        distinct matches (``min_score``, or -inf, when there are fewer)."""
        ok = np.ones(len(values), bool)
        if self.min_score is not None:
            ok = values >= self.min_score
        kept = _suppress(positions[ok], values[ok], shape, self.max_matches)
        if len(kept) < self.max_matches:
            return -np.inf if self.min_score is None else self.min_score
        return float(values[ok][kept[-1]])

    def trace(self, k, positions, values, parents, scales, examined=(1.0,)):
        return OctaveTrace(
            octave=k,
            scale=self.layout.public(self.factor**k),
            positions=np.asarray(positions, dtype=int)[:, 3 - self.layout.ndim :],
            scores=np.asarray(values, dtype=np.float64),
            parents=np.asarray(parents, dtype=int),
            scales=np.asarray(scales, dtype=np.float64),
            examined=np.asarray(sorted(examined), dtype=np.float64),
        )

    def matches(self, trace, scorer_for, peaks: bool = False, known=None):
        """The best distinct octave-0 candidates as matches (a list of
        :class:`Match`), with their sub-pixel corners; ``scorer_for(i)`` scores
        the template at the scale of octave 0's candidate ``i``. ``peaks``: the
        trace's scores are sub-pixel peaks (a search over scales), so each
        match's ZNCC is scored at its position. ``known(i)``: ``(scores, at)``
        already scored around candidate ``i`` (see :func:`_subpixel`)."""
        final = trace[-1]
        ok = np.ones(len(final.scores), bool)
        if self.min_score is not None:
            ok = final.scores >= self.min_score
        idx = np.flatnonzero(ok)
        shape = self.layout.template_shape
        extent = np.array(shape, float)[None] * final.scales[idx, None]
        kept = _suppress(
            final.positions[idx], final.scores[idx], extent, self.max_matches
        )
        out = []
        lead = (0,) * (3 - self.layout.ndim)
        for i in kept:
            j = idx[i]
            position = tuple(int(v) for v in final.positions[j])
            scale = float(final.scales[j])
            corner, _, score = _subpixel(
                self.levels[0],
                scorer_for(j),
                lead + position,
                None if known is None else known(j),
            )
            out.append(
                Match(
                    position=position,
                    score=score if peaks else float(final.scores[j]),
                    shape=shape,
                    trace=trace,
                    subpixel=corner[3 - self.layout.ndim :],
                    scale=scale,
                )
            )
        return sorted(out, key=lambda m: -m.score)


def _best_maxima(scores, count, least, floor=-np.inf):
    """Positions and scores of the best local maxima of a ZNCC map, best first,
    flat windows left out: all those within MARGIN of the best (at most
    ``count``), and at least ``least`` of them; of those, the ones that score
    at least ``floor``."""
    positions = _local_maxima(scores, count, floor)
    values = scores[tuple(positions.T)].astype(np.float64)
    keep = _shortlist(values, least, len(values), MARGIN)
    return positions[:keep], values[:keep]


def _merge(*groups):
    """Union of ``(positions, scores, parents)`` candidate groups: one entry per
    position (its best score), best first. Positions are ``(n, d)`` rows, any
    ``d`` (a scale search adds the scale as a coordinate). Scores equal to six
    decimals (float noise) tie, and the earlier group's entry stays: a window
    scored both by refinement and by the check keeps its parent."""
    positions = np.concatenate([g[0] for g in groups])
    values = np.concatenate([g[1] for g in groups])
    parents = np.concatenate([g[2] for g in groups])
    order = np.argsort(-np.round(values, 6), kind="stable")
    positions, values, parents = positions[order], values[order], parents[order]
    _, first = np.unique(row_keys(positions), return_index=True)
    first = np.sort(first)
    return positions[first], values[first], parents[first]


def row_keys(rows: np.ndarray) -> np.ndarray:
    """One int64 per row of a 2-D integer array, equal exactly for equal rows
    (``np.unique`` on them is much faster than on rows)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not rows.size:
        return np.zeros(len(rows), np.int64)
    low = rows.min(axis=0)
    return np.ravel_multi_index((rows - low).T, tuple(rows.max(axis=0) - low + 1))


def _grown(scores: np.ndarray) -> np.ndarray:
    """Maximum over each entry's 3x3 (3x3x3 for volumes) neighbourhood; NaN
    (flat windows) counts as -inf. Returns ``(filled map, grown map)``."""
    filled = scores.astype(np.float32)
    for plane in filled:
        cv2.patchNaNs(plane, -np.inf)
    kernel = np.ones((3, 3), np.uint8)
    grown = np.stack([cv2.dilate(plane, kernel) for plane in filled])
    if len(grown) > 1:  # extend the neighbourhood along z
        across = grown.copy()
        np.maximum(across[1:], grown[:-1], out=across[1:])
        np.maximum(across[:-1], grown[1:], out=across[:-1])
        grown = across
    return filled, grown


def _doubtful(level, scorer, coarse, scale, threshold, count):
    """Octave-0 candidates ``(positions, scores, ...)`` from every coarse
    position whose score reaches ``threshold``.

    ``coarse`` is the start octave's ZNCC map, ``scale`` its level-0 pixels per
    pixel per axis. Coarse position ``q`` stands for the level-0 positions that
    round to it (``q * scale +- scale / 2``) and its score is the maximum over
    its 3x3 neighbourhood. Every one of those level-0 positions is scored, in
    whichever of three ways reads the fewest pixels: a window around each
    (climbing on where the best lies on a window's edge, see :func:`_refine`)
    while they add up to less than EXHAUSTIVE_SHARE of the image; else one
    exhaustive pass (:func:`_exhaustive`) over each run of neighbouring image
    tiles holding doubtful positions (:func:`_doubtful_runs`), or over the whole
    image when the runs would read more. An exhaustive pass contributes its
    ``count`` best local maxima.
    """
    _, grown = _grown(coarse)
    doubt = np.argwhere(grown >= threshold)
    radius = max(int(scale.max()) // 2, 1)
    cut = np.prod(np.minimum(2 * radius + np.array(scorer.shape), level.shape[:3]))
    if len(doubt) * cut < EXHAUSTIVE_SHARE * np.prod(level.shape[:3]):
        return _refine(level, scorer, doubt * scale, radius)
    runs = _doubtful_runs(doubt, scale, radius, scorer.shape, level.shape[:3])
    if runs is None:
        return _exhaustive(level, scorer, count)
    found = []
    for y0, y1, x0, x1 in runs:
        positions, values, parents = _exhaustive(level[:, y0:y1, x0:x1], scorer, count)
        found.append((positions + np.array([0, y0, x0]), values, parents))
    return _merge(*found)


#: Side of the tiles of :func:`_doubtful_runs`, in template sides: larger tiles
#: read less twice (neighbouring passes overlap by a template), smaller ones
#: leave out more of the image around scattered doubtful positions.
_TILE = 4


def _doubtful_runs(doubt, scale, radius, shape, extent):
    """Image regions ``(y0, y1, x0, x1)`` (level-0, all of z) that hold every
    template window at the level-0 positions that coarse positions ``doubt``
    stand for (``doubt * scale +- radius``), as runs of neighbouring tiles of
    _TILE template sides along x, one tile row each; None when the runs would
    read at least as many pixels as the whole image does."""
    _, th, tw = shape
    _, h, w = extent
    side = _TILE * max(th, tw)
    at = doubt[:, 1:] * scale[1:]
    rows, cols = at[:, 0] // side, at[:, 1] // side
    marked = np.zeros((int(rows.max()) + 1, int(cols.max()) + 1), bool)
    marked[rows, cols] = True
    runs, pixels = [], 0
    for r, line in enumerate(marked):
        padded = np.concatenate([[False], line, [False]])
        edges = np.flatnonzero(padded[1:] != padded[:-1]).reshape(-1, 2)
        for c0, c1 in edges:
            y0, x0 = max(r * side - radius, 0), max(c0 * side - radius, 0)
            y1 = min((r + 1) * side + radius + th - 1, h)
            x1 = min(c1 * side + radius + tw - 1, w)
            runs.append((y0, y1, x0, x1))
            pixels += (y1 - y0) * (x1 - x0)
    return runs if pixels < h * w else None


def _exhaustive(level, scorer, count):
    """The ``count`` best local maxima of the whole octave-0 ZNCC map, with
    exact scores: ``(positions, scores, parents)``.

    A grey plane is scored by OpenCV's ``TM_CCOEFF_NORMED`` (several times
    faster over a whole image than :class:`_Scorer`'s float64 moments), flat
    windows left out by float32 box moments, and the maxima found are scored
    again exactly by ``scorer`` (a one-pixel climb).
    """
    if not scorer.plain:
        scores = scorer(level)
        positions = _local_maxima(scores, count)
        values = scores[tuple(positions.T)].astype(np.float64)
        return positions, values, np.full(len(values), -1)
    plane, mean_square = centred(level[0, :, :, 0])
    template = scorer.zero_mean[0, :, :, 0]
    scores = cv2.matchTemplate(plane, template, cv2.TM_CCOEFF_NORMED)
    scores[_rough_variance(plane, template.shape, mean_square)[1]] = np.nan
    positions = _local_maxima(scores[None], count)
    return _refine(level, scorer, positions, 1)


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


#: From this many starts on, :func:`_refine` climbs them together whatever the
#: template's width.
_MANY = 16

#: Most window moves of one candidate's hill climb (each moves >= 1 pixel).
_MAX_CLIMBS = 4


def _shortlist(values, least: int, most: int, margin: float) -> int:
    """How many of the ``values`` (sorted best first) to keep: those within
    ``margin`` of the best, but at least ``least`` and at most ``most``."""
    close = int(np.count_nonzero(values >= values[0] - margin)) if len(values) else 0
    return min(max(close, least), most)


def _refine(level, scorer, starts, radius):
    """Refine each start by a hill climb (:func:`_climb`); deduplicated, best first.

    Grey 2-D searches with narrow templates climb all starts at once
    (:func:`_climb_together`); starts it cannot settle (windows at the image
    border, a flat winner) climb one by one.
    """
    last = [n - t for n, t in zip(level.shape[:3], scorer.shape)]
    found = [None] * len(starts)
    alone = range(len(starts))
    # side by side, a cut wastes the template's width minus one of positions;
    # one call instead of one per start saves more than that costs from three
    # starts on for templates up to five windows wide, and for many starts
    narrow = scorer.shape[2] <= 5 * (2 * radius + 1) or len(starts) >= _MANY
    if scorer.plain and narrow and len(starts) > 2 and min(last[1:]) >= 2 * radius:
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
