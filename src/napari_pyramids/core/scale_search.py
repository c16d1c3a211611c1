"""Template search over a range of scales, on one image pyramid.

``find_template(image, template, scales=(0.5, 2.0))`` finds an object that may be
half to twice the template's size in the image: a template cut from a photo
taken twice as close is found at scale 0.5. ``Match.scale`` is the found
object's size over the template's and ``Match.position`` the top-left corner of
its box, ``template shape x scale`` pixels large; template pixel ``i`` sits on
image pixel ``position + i * scale``.

How
---
The image's Gaussian pyramid is built once, as for a search at one scale. What
changes with the scale is the template, which is small: for scale ``s`` at
octave ``k`` it is resampled by ``s / 2**k`` (after a Gaussian blur that gives
it the blur of that octave of the image), so whole octaves of the image and a
continuous range of template sizes cover every scale, and the image is never
resized per scale (no half-octave pyramid is needed either).

A set of start scales, spaced so that the template's longer side grows by
:data:`START_PIXELS` pixels from one to the next, each gets an exhaustive pass
at the octave where its template keeps at least ``min_size`` pixels along its
shorter side. The best local maxima of those maps go down octave by octave; at
each, every candidate's corner and scale are fitted continuously, by
maximising ZNCC (:mod:`~napari_pyramids.core.ecc_fit`), starting where the
coarser octave's fit ended (or, for a start, at its map's sub-pixel peak), and
those that fall more than FOLLOW behind the best are dropped. At octave 0 the
fitted scale is the match's; ``Match.position`` is the integer corner of the
template resampled to it, its sub-pixel corner the quadratic fit around that
corner and its ZNCC the score there, as at one scale.

The fits sample the image on the grid of the template resampled to the nearest
scale of a grid of powers of two, ``2**(j / 2**m)``, fine enough that the
template's longer side changes by at most a pixel from one to the next (the
resampled templates are cached; the fit's own spacing covers the rest). The
ZNCC at the scale found is within :data:`SCALE_TOLERANCE` of the ZNCC at the
true one (tests/core/test_scale_search.py measures it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np

from napari_pyramids.core.ecc_fit import Fit, fit_all, warp
from napari_pyramids.core.search_engine import (
    FOLLOW,
    OctaveTrace,
    _best_maxima,
    _merge,
    _Search,
    _shortlist,
    all_flat,
    image_levels,
    row_keys,
)
from napari_pyramids.core.subpixel import vertex
from napari_pyramids.core.zncc import (
    _rough_variance,
    _Scorer,
    centred,
    plane_of,
)

__all__ = ["MIN_SCALED_SIDE", "SCALE_TOLERANCE", "check_scales", "iter_scaled_search"]

#: Fewest template pixels along its shorter side at the smallest scale searched.
MIN_SCALED_SIDE = 4

#: The found scale's ZNCC is at least the true scale's minus this (see the module
#: docstring; asserted by the tests on templates cut from resized pictures).
SCALE_TOLERANCE = 0.02

#: From one start scale to the next the template's longer side changes by
#: this many pixels of its start octave.
START_PIXELS = 1.5

#: Candidates in one cell of this many pixels (of their octave) are one place
#: at several scales: the best stays.
_SAME_PLACE = 3

#: Log2 scales are told apart to 1 / this (a fitted scale is rounded to it).
_SCALE_KEYS = 2**20

#: Fewest candidates followed from one octave to the next.
_LEAST = 2


def check_scales(scales, template_shape, image_shape) -> tuple[float, float]:
    """``scales`` as ``(smallest, largest)`` floats, or a ValueError that says
    what is wrong and what would work."""
    try:
        lo, hi = (float(v) for v in scales)
    except (TypeError, ValueError):
        raise TypeError(
            f"scales must be a pair (smallest, largest) of numbers, e.g. (0.5, 2.0); "
            f"got {scales!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi <= 0:
        raise ValueError(
            f"scales must be positive and finite (object size / template size), "
            f"got {scales!r}"
        )
    if lo > hi:
        raise ValueError(
            f"scales={scales!r} is inverted: give (smallest, largest), e.g. "
            f"({hi:g}, {lo:g})"
        )
    fits = min(n / t for n, t in zip(image_shape, template_shape))
    if max(t * hi for t in template_shape) > max(image_shape) or hi > fits:
        raise ValueError(
            f"at scale {hi:g} the template {template_shape} would be larger than "
            f"the image {image_shape}; the largest scale that fits is {fits:.3g}"
        )
    least = MIN_SCALED_SIDE / min(template_shape)
    if lo < least:
        raise ValueError(
            f"at scale {lo:g} the template {template_shape} would be only "
            f"{min(template_shape) * lo:.1f} px along its shorter side, too small "
            f"to score (fewer than {MIN_SCALED_SIDE}); the smallest usable scale "
            f"is {least:.3g}"
        )
    return lo, hi


def _step(side: float) -> float:
    """Grid step (log2 of the scale) for a template side of ``side`` pixels:
    the largest ``2**-m`` that changes that side by at most one pixel."""
    m = max(0, math.ceil(math.log2(max(side, 1.0) * math.log(2))))
    return 2.0**-m


def image_blur(scale: float, k: int) -> float:
    """Gaussian sigma (pixels) the image gets before it is scored against the
    template at ``scale`` and octave ``k``: at octave 0 an enlarged template
    has the coarser sampling, which the image gets instead (variance 1/4 pixel
    squared per pixel); coarser octaves are blurrier than any template."""
    return 0.5 * math.sqrt(scale**2 - 1) if k == 0 and scale > 1 else 0.0


class _Templates:
    """The template blurred and resampled for (scale, octave) pairs, and as
    scorers, cached."""

    def __init__(self, template: np.ndarray):
        #: (h, w, channels) float32
        self.template = template.astype(np.float32)
        self.sides = template.shape[:2]
        self.cache: dict[tuple[float, int], _Scorer] = {}
        self.sources: dict[tuple[float, int], np.ndarray] = {}
        self.samples: dict[tuple[float, int], np.ndarray] = {}

    def side(self, u: float, k: int) -> float:
        """Longer side at log2 scale ``u`` and octave ``k``, in pixels."""
        return max(self.sides) * 2.0 ** (u - k)

    def __call__(self, u: float, k: int) -> _Scorer:
        """Scorer of the template at log2 scale ``u`` and octave ``k``."""
        key = (u, k)
        if key not in self.cache:
            scale = 2.0**u
            template = self.resampled(scale, k)[None]
            blur = image_blur(scale, k)
            self.cache[key] = _Scorer(template, rough=k > 0, blur=blur)
        return self.cache[key]

    def resampled(self, scale: float, k: int) -> np.ndarray:
        """The template as the object at ``scale`` looks at octave ``k``
        (cached): pixel ``i`` samples template coordinate ``i * 2**k / scale``
        (the pyramid's alignment) of :meth:`blurred`."""
        key = (scale, k)
        if key not in self.samples:
            f = scale / 2.0**k
            src = self.blurred(scale, k)
            h, w = (math.floor((n - 1) * f + 1e-9) + 1 for n in self.sides)
            matrix = np.array([[1 / f, 0, 0], [0, 1 / f, 0]])
            out = warp(src, matrix, (w, h))  # the blur may drop a lone channel
            self.samples[key] = out.reshape(h, w, self.template.shape[-1])
        return self.samples[key]

    def blurred(self, scale: float, k: int) -> np.ndarray:
        """The template with what the image has and it lacks, before sampling:
        the octave's blur (variance (4**k - 1) / 3 level-0 pixels squared, the
        binomial kernel's, in template pixels divided by ``scale**2``) and, for
        an object smaller than the template, the coarser sampling of the image
        (variance 1/4 pixel squared per pixel). Cached."""
        key = (scale, k)
        if key not in self.sources:
            var = (4.0**k - 1) / 3 / scale**2 + 0.25 * max(0.0, 1 / scale**2 - 1)
            src = self.template
            if var > 0.01:
                src = cv2.GaussianBlur(
                    src, (0, 0), math.sqrt(var), borderType=cv2.BORDER_REFLECT_101
                )
            self.sources[key] = src
        return self.sources[key]


def _start_octave(side_min: float, u: float, min_size: int, levels, depth: int) -> int:
    """Octave where a scale starts: its template keeps >= min_size pixels."""
    k = 0
    while side_min * 2.0 ** (u - k - 1) >= min_size and k + 1 < depth:
        k += 1
    return k if levels is None else min(k, levels - 1)


def iter_scaled_search(
    image,
    template,
    layout,
    scales,
    levels,
    min_size: int,
    *,
    max_matches: int,
    min_score,
    count: int,
    refine_radius: int,
) -> Iterator[OctaveTrace]:
    """The search of :func:`~napari_pyramids.core.search.iter_find_template`
    over a range of scales (checked inputs; ``layout`` views them)."""
    if layout.ndim != 2:
        raise ValueError(
            "scales works on 2-D images (optionally with colour); search a volume "
            "at scale 1, or one plane at a time"
        )
    lo, hi = check_scales(scales, layout.template_shape, layout.image_shape)
    templates = _Templates(layout.internal(template)[0])
    # log2 scales on the grid candidates' scales are kept on, inside the range
    u_lo = math.ceil(math.log2(lo) * _SCALE_KEYS) / _SCALE_KEYS
    u_hi = max(math.floor(math.log2(hi) * _SCALE_KEYS) / _SCALE_KEYS, u_lo)
    side_min = min(layout.template_shape)
    depth = max(1, math.floor(math.log2(min(layout.image_shape) / MIN_SCALED_SIDE)))
    starts = {}  # log2 scale -> start octave
    u = u_lo
    while True:
        k = _start_octave(side_min, u, min_size, levels, depth)
        starts[u] = k
        if u >= u_hi:
            break
        step = math.log2(1 + START_PIXELS / templates.side(u, k))
        after = round((u + step) * _SCALE_KEYS) / _SCALE_KEYS  # on the keys' grid
        u = min(max(after, u + 1 / _SCALE_KEYS), u_hi)
    top = max(starts.values())
    levels_ = image_levels(image, top + 1, layout)
    search = _Search(
        levels_,
        layout,
        np.array([1, 2, 2]),
        max_matches=max_matches,
        min_score=min_score,
        count=count,
        refine_radius=refine_radius,
    )
    refine = _Refiner(search, templates, (u_lo, u_hi))
    found = (np.zeros((0, 3), int), np.zeros(0), np.zeros(0, int))
    us = np.zeros(0)
    trace = []
    for k in range(top, -1, -1):
        examined = set()
        least = max(_LEAST, 2 * max_matches)
        if len(us):
            found, us = refine(k, found[0] * search.factor, us, examined, least)
        fresh = [u for u, start in starts.items() if start == k]
        examined.update(fresh)
        maps = _start_maps(levels_[k], [templates(u, k) for u in fresh])
        groups = [(found, us)]
        by_scale = {round(u * _SCALE_KEYS): m for u, m in zip(fresh, maps)}
        # a start below the followed candidates' best less FOLLOW would not
        # be followed: its map's maxima are not looked for
        floor = found[1][0] - FOLLOW if len(us) >= least else -np.inf
        for u, scores in zip(fresh, maps):
            positions, values = _best_maxima(scores, search.most, count, floor)
            new = (positions, values, np.full(len(values), -1))
            groups.append((new, np.full(len(values), u)))
        found, us = _merge_scaled(*groups)
        if not len(us):
            raise all_flat()
        found, us = _keep(found, us, least, search.most)
        for position, u, parent in zip(found[0], us, found[2]):
            if parent < 0:  # a start: its fit begins at the map's peak
                refine.place(k, position, u, by_scale[round(u * _SCALE_KEYS)])
        octave = search.trace(
            k, found[0], found[1], found[2], 2.0**us, [2.0**u for u in examined]
        )
        trace.append(octave)
        yield octave
    final_us = us
    return search.matches(
        tuple(trace), lambda i: templates(float(final_us[i]), 0), peaks=True
    )


def _start_maps(level, scorers) -> list[np.ndarray]:
    """Exhaustive ZNCC maps ``(1, h, w)`` of every scale that starts at this
    octave; the level is centred once for all of them, and the window
    variances are computed once per template shape (neighbouring scales often
    resample the template to the same shape)."""
    if not all(s.rough for s in scorers):
        return [s(level) for s in scorers]
    plane, mean_square = centred(plane_of(level))
    variances = {}
    maps = []
    for scorer in scorers:
        shape = scorer.shape[1:]
        if shape not in variances:
            variances[shape] = _rough_variance(plane, shape, mean_square)
        maps.append(scorer._rough(plane, mean_square, variances[shape])[None])
    return maps


def _keep(found, us, least: int, most: int):
    """The candidates worth following: one per place (the same object at
    neighbouring scales converges to one peak and would crowd out the others),
    then those within FOLLOW of the best, at least ``least``."""
    _, distinct = np.unique(row_keys(found[0] // _SAME_PLACE), return_index=True)
    distinct = np.sort(distinct)  # the best of each cell, best first
    keep = distinct[: _shortlist(found[1][distinct], least, most, FOLLOW)]
    return tuple(a[keep] for a in found), us[keep]


def _merge_scaled(*groups):
    """:func:`~napari_pyramids.core.search._merge` for candidates that carry a
    log2 scale each: one entry per (position, scale), best first."""
    # the scale joins the position as a fourth coordinate for the merge
    keyed = [
        (np.column_stack([g[0], np.round(u * _SCALE_KEYS).astype(int)]), g[1], g[2])
        for g, u in groups
    ]
    positions, values, parents = _merge(*keyed)
    return (positions[:, :3], values, parents), positions[:, 3] / _SCALE_KEYS


class _Refiner:
    """Refines candidates at one octave in position and scale.

    Each candidate's corner and scale are fitted continuously
    (:mod:`~napari_pyramids.core.ecc_fit`) from where the coarser octave's fit
    left them (the sub-pixel corner, doubled), or, for a maximum of a start
    map, from the map's sub-pixel peak (:meth:`place`). Candidates are compared
    by the ZNCC their fits reach.
    """

    def __init__(self, search, templates, bounds):
        self.search = search
        self.templates = templates
        self.bounds = bounds
        #: (octave, y, x, scale key) -> sub-pixel corner of a fit there
        self.corners: dict[tuple[int, int, int, int], tuple[float, float]] = {}
        #: (grid log2 scale, octave) -> Fit (it holds no candidate's state)
        self.fits: dict[tuple[float, int], tuple[Fit, float]] = {}

    def __call__(self, k, starts, us, examined, least):
        """Candidates from octave ``k + 1`` (``starts`` already in octave-``k``
        pixels, ``us`` their log2 scales) refined at octave ``k``: ``(positions,
        scores, parents), log2 scales``, best first (two that ended at the same
        corner and scale are both there: the caller merges)."""
        level = self.search.levels[k]
        plane = level[0] if level.shape[-1] > 1 else level[0, :, :, 0]
        fits, points, units = [], [], []
        for start, u in zip(starts, us):
            cy, cx = self.corners[_key(k + 1, start[1] // 2, start[2] // 2, u)]
            corner = (2 * cy, 2 * cx)
            fit, unit = self.fit(plane, k, u)
            fits.append(fit)
            points.append((*corner, 2.0**u / unit))
            units.append(unit)
            examined.add(float(u))
        tol = _FIT_TOLERANCE if k == 0 else 2 * _FIT_TOLERANCE
        options = dict(steps=_FIT_STEPS if k == 0 else _COARSE_STEPS, tol=tol)
        done = fit_all(fits, points, least=least, margin=FOLLOW, **options)
        if k == 0:
            self.regrid(plane, fits, done, units, options)
        rows, values, kept, kept_us = [], [], [], []
        for parent, (got, unit) in enumerate(zip(done, units)):
            if got is None:
                continue
            cy, cx, f, zncc = got
            u = round(math.log2(f * unit) * _SCALE_KEYS) / _SCALE_KEYS
            y, x = round(cy), round(cx)
            self.corners[_key(k, y, x, u)] = (cy, cx)
            examined.add(u)
            rows.append((0, y, x))
            values.append(zncc)
            kept.append(parent)
            kept_us.append(u)
        if not rows:
            return (np.zeros((0, 3), int), np.zeros(0), np.zeros(0, int)), np.zeros(0)
        order = np.argsort(-np.array(values), kind="stable")
        found = (np.array(rows)[order], np.array(values)[order], np.array(kept)[order])
        return found, np.array(kept_us)[order]

    def regrid(self, plane, fits, done, units, options) -> None:
        """Octave 0's fits (:class:`Fit` ``fits``, results ``done``, their
        templates' scales ``units``) that stretched their template by more than
        _STRETCH pixels go on from there with the template of the grid scale
        they ended nearest, up to _REGRIDS times: a template stretched by
        several percent and the image blurred to match it score a little
        differently from the template resampled to that scale, which is the
        match's ZNCC. The lists are updated in place."""
        for _ in range(_REGRIDS):
            moved = [
                i
                for i, got in enumerate(done)
                if got is not None
                and abs(got[2] - 1) * max(fits[i].h, fits[i].w) > _STRETCH
            ]
            if not moved:
                return
            again = [
                self.fit(plane, 0, math.log2(done[i][2] * units[i])) for i in moved
            ]
            starts = [
                (done[i][0], done[i][1], done[i][2] * units[i] / unit)
                for i, (_, unit) in zip(moved, again)
            ]
            new = [fit for fit, _ in again]
            redone = fit_all(new, starts, least=len(moved), margin=math.inf, **options)
            for i, fit, (_, unit), got in zip(moved, new, again, redone):
                if got is not None:
                    fits[i], done[i], units[i] = fit, got, unit

    def place(self, k, position, u, scores):
        """Record the sub-pixel corner of the maximum at ``position`` of the
        start map ``scores`` (log2 scale ``u``, octave ``k``): the vertex of one
        parabola per axis through the map's scores around it."""
        _, y, x = (int(p) for p in position)
        plane = scores[0]
        h, w = plane.shape
        cy, cx = float(y), float(x)
        if 0 < y < h - 1:
            cy += vertex(*(float(v) for v in plane[y - 1 : y + 2, x]))[0]
        if 0 < x < w - 1:
            cx += vertex(*(float(v) for v in plane[y, x - 1 : x + 2]))[0]
        self.corners[_key(k, y, x, u)] = (cy, cx)

    def on_grid(self, u: float, k: int) -> float:
        """``u`` rounded to octave ``k``'s grid of trial scales, within bounds."""
        step = _step(self.templates.side(u, k))
        return min(max(round(u / step) * step, self.bounds[0]), self.bounds[1])

    def fit(self, plane, k: int, u: float):
        """A :class:`~napari_pyramids.core.ecc_fit.Fit` of the template near log2
        scale ``u`` at octave ``k``, and the scale one unit of its spacing
        stands for: the template resampled to the octave's pixels at the
        nearest grid scale (cached; the fit's spacing, near 1, covers the
        rest), so that its ZNCC is the one the scorers compute."""
        near = self.on_grid(u, k)
        if (near, k) not in self.fits:
            scale = 2.0**near
            template = self.templates.resampled(scale, k)
            if template.shape[-1] == 1:
                template = template[..., 0]
            lo, hi = (2.0 ** (b - near) for b in self.bounds)
            fit = Fit(plane, template, (lo, hi), image_blur(scale, k))
            self.fits[near, k] = fit, scale
        return self.fits[near, k]


def _key(k: int, y, x, u: float) -> tuple[int, int, int, int]:
    """Dictionary key of a candidate: octave, integer corner, log2 scale."""
    return (k, int(y), int(x), round(u * _SCALE_KEYS))


#: Most steps of one candidate's fit at octave 0, and at a coarser octave
#: (whose fits only start finer ones).
_FIT_STEPS = 6
_COARSE_STEPS = 4

#: Most times an octave-0 fit moves on to the template of the grid scale it
#: ended nearest (:meth:`_Refiner.regrid`), and by how many pixels of its
#: longer side it must have stretched its own template to do so.
_REGRIDS = 2
_STRETCH = 2.0

#: A fit at octave 0 stops when a step moves the corner by less than this many
#: pixels (twice as many at the coarser octaves, whose fits only start finer ones).
_FIT_TOLERANCE = 0.1
