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
changes with the scale is the template, which is small: for trial scale ``s``
at octave ``k`` it is resampled by ``s / 2**k`` (after a Gaussian blur that
gives it the blur of that octave of the image), so whole octaves of the image
and a continuous range of template sizes cover every scale, and the image is
never resized per scale (no half-octave pyramid is needed either).

Each trial scale starts with an exhaustive pass at the octave where its
template keeps at least ``min_size`` pixels along its shorter side; the best
candidates go down octave by octave, refined in position (a hill climb, as at
one scale) and in scale (a hill climb over the neighbouring trial scales of that
octave). Scales are compared by the ZNCC of the sub-pixel peak: fitted at the
coarser octaves, scored at octave 0 with the template resampled so that its
corner lies on the fitted peak (see :meth:`_ScaleClimb.peak`).

Spacing
-------
Trial scales lie on a grid of powers of two, ``2**(j / 2**m)``, whose step is
halved until it changes the template's longer side by at most one pixel at the
octave where it is scored (``2**(1 / 2**m) - 1 <= 1 / n_k``, ``n_k`` that side).
Between neighbouring trials the template's corners move by at most half a pixel
relative to its centre; the trial nearest the true scale is within a quarter
pixel. At octave 0 with a 64 px template the step is 2**(1/64), 1.1 %, so the
scale found is within 0.6 % of the true one, and its ZNCC is within
:data:`SCALE_TOLERANCE` of the ZNCC at the true scale (tests/core/test_scale_search.py
measures it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np

from napari_pyramids.core.search_engine import (
    _MAX_CLIMBS,
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
from napari_pyramids.core.subpixel import _vertex, parabolas
from napari_pyramids.core.zncc import (
    _is_flat,
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

#: Candidates in one cell of this many pixels (of their octave) are one place
#: at several scales: the best stays.
_SAME_PLACE = 3

#: Fewest candidates followed from one octave to the next.
_LEAST = 2

#: Most steps of one candidate's hill climb over scales at one octave.
_SCALE_CLIMBS = 3


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


class _Templates:
    """The template resampled for (log2 scale, octave) pairs, as scorers, cached."""

    def __init__(self, template: np.ndarray):
        #: (h, w, channels) float32
        self.template = template.astype(np.float32)
        self.sides = template.shape[:2]
        self.cache: dict[tuple[float, int], _Scorer] = {}
        self.sources: dict[tuple[float, int], np.ndarray] = {}

    def side(self, u: float, k: int) -> float:
        """Longer side at log2 scale ``u`` and octave ``k``, in pixels."""
        return max(self.sides) * 2.0 ** (u - k)

    def __call__(self, u: float, k: int, shift=None) -> _Scorer:
        """Scorer of the template at log2 scale ``u`` and octave ``k``; with a
        ``shift``, one for a corner that far (``(dy, dx)``, level-0 pixels)
        beyond the integer position scored (not cached)."""
        key = (u, k)
        if shift is None and key in self.cache:
            return self.cache[key]
        scale = 2.0**u
        # at octave 0 an enlarged template has the coarser sampling: the
        # image gets its blur instead (variance 1/4 pixel squared per pixel)
        blur = 0.5 * math.sqrt(scale**2 - 1) if k == 0 and scale > 1 else 0
        scorer = _Scorer(self.resampled(scale, k, shift)[None], rough=k > 0, blur=blur)
        if shift is None:
            self.cache[key] = scorer
        return scorer

    def resampled(self, scale: float, k: int, shift=None) -> np.ndarray:
        """The template as the object at ``scale`` looks at octave ``k``, its
        corner ``shift`` (level-0 pixels, ``(dy, dx)``; none by default) beyond
        its first pixel.

        Pixel ``i`` samples template coordinate ``(i - shift / 2**k) * 2**k /
        scale`` (the pyramid's alignment) of :meth:`blurred`.
        """
        f = scale / 2.0**k
        src = self.blurred(scale, k)
        h, w = (math.floor((n - 1) * f + 1e-9) + 1 for n in self.sides)
        dy, dx = (0.0, 0.0) if shift is None else (d / 2.0**k for d in shift)
        matrix = np.array([[1 / f, 0, -dx / f], [0, 1 / f, -dy / f]])
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        channels = src.shape[-1] if src.ndim == 3 else 1
        planes = [src] if channels <= 4 else [src[..., c] for c in range(channels)]
        out = [
            cv2.warpAffine(
                p, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE
            )
            for p in planes
        ]
        out = out[0] if len(out) == 1 else np.stack(out, axis=-1)
        return out.reshape(h, w, channels)

    def blurred(self, scale: float, k: int) -> np.ndarray:
        """The template with what the image has and it lacks, before sampling:
        the octave's blur (variance (4**k - 1) / 3 level-0 pixels squared, the
        binomial kernel's, in template pixels divided by ``scale**2``) and, for
        an object smaller than the template, the coarser sampling of the image
        (variance 1/4 pixel squared per pixel). Cached: every corner shift
        tried at one scale samples the same blurred template."""
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
    u_lo, u_hi = math.log2(lo), math.log2(hi)
    side_min = min(layout.template_shape)
    depth = max(1, math.floor(math.log2(min(layout.image_shape) / MIN_SCALED_SIDE)))
    starts = {}  # log2 scale -> start octave, on each start octave's grid
    u = u_lo
    while True:
        k = _start_octave(side_min, u, min_size, levels, depth)
        starts[u] = k
        if u >= u_hi:
            break
        u = min(u + _step(templates.side(u, k)), u_hi)
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
    climb = _ScaleClimb(search, templates, (u_lo, u_hi), refine_radius)
    found = (np.zeros((0, 3), int), np.zeros(0), np.zeros(0, int))
    us = np.zeros(0)
    trace = []
    for k in range(top, -1, -1):
        examined = set()
        least = max(_LEAST, 2 * max_matches)
        if len(us):
            found, us = climb(k, found[0] * search.factor, us, examined, least)
        fresh = [u for u, start in starts.items() if start == k]
        examined.update(fresh)
        maps = _start_maps(levels_[k], [templates(u, k) for u in fresh])
        groups = [(found, us)]
        for u, scores in zip(fresh, maps):
            positions, values = _best_maxima(scores, search.most, count)
            new = (positions, values, np.full(len(values), -1))
            groups.append((new, np.full(len(values), u)))
        found, us = _merge_scaled(*groups)
        if not len(us):
            raise all_flat()
        found, us = _keep(found, us, least, search.most)
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
        (np.column_stack([g[0], np.round(u * 2**20).astype(int)]), g[1], g[2])
        for g, u in groups
    ]
    positions, values, parents = _merge(*keyed)
    return (positions[:, :3], values, parents), positions[:, 3] / 2**20


class _ScaleClimb:
    """Refines candidates at one octave in position and scale.

    Scales are compared by the ZNCC of the sub-pixel peak (the vertex of one
    parabola per axis through the scores around the best whole pixel; at
    octave 0 scored there, see :meth:`peak`): at whole
    pixels, how well the resampled template's grid happens to fall on the
    image's changes with the scale by as much as a few percent of scale error
    costs, which makes integer scores too rough to climb on.
    """

    def __init__(self, search, templates, bounds, radius):
        self.search = search
        self.templates = templates
        self.bounds = bounds
        self.radius = radius

    def peak(self, k, start, u, radius, examined):
        """``(position, peak ZNCC)`` of the climb from ``start`` at log2 scale
        ``u`` (None where every window in reach is flat).

        At octave 0 the peak's ZNCC is scored, not fitted: the template
        resampled with its corner at the sub-pixel peak is scored at the whole
        pixel. For sharp texture (bricks) the quadratic misses the peak by as
        much as neighbouring scales differ, so fitted peaks rise and fall with
        how far the best corner lies from a whole pixel, and the climb over
        scales stops on the wrong rise.
        """
        examined.add(float(u))
        level = self.search.levels[k]
        scorer = self.templates(float(u), k)
        found = _peak(level, scorer, start, radius, _vertex if k == 0 else parabolas)
        if found is None or k > 0 or not np.any(found[2]):
            return None if found is None else found[:2]
        position, value, shift = found
        shifted = self.templates.resampled(2.0**u, 0, tuple(shift[1:]))
        h, w = shifted.shape[:2]
        window = level[0, position[1] : position[1] + h, position[2] : position[2] + w]
        if scorer.blur:
            window = cv2.GaussianBlur(window, (0, 0), scorer.blur).reshape(window.shape)
        score = _zncc(window, shifted)
        return position, value if score is None else score

    def __call__(self, k, starts, us, examined, least):
        """Candidates from octave ``k + 1`` (``starts`` already in octave-``k``
        pixels) refined at octave ``k``: position at their own scale; then the
        best (:func:`_keep`) in scale: the trial scales up to two grid steps
        away, then on, a step at a time, while the score rises."""
        u_lo, u_hi = self.bounds
        steps = np.array([_step(self.templates.side(u, k)) for u in us])
        us = np.clip(np.round(us / steps) * steps, u_lo, u_hi)
        rows, peaks, parents, kept_us = [], [], [], []
        for i, (start, u) in enumerate(zip(starts, us)):
            found = self.peak(k, start, u, self.radius, examined)
            if found is not None:
                rows.append(found[0])
                peaks.append(found[1])
                parents.append(i)
                kept_us.append(u)
        if not rows:
            return (np.zeros((0, 3), int), np.zeros(0), np.zeros(0, int)), np.zeros(0)
        order = np.argsort(-np.array(peaks), kind="stable")
        found = tuple(np.asarray(a)[order] for a in (rows, peaks, parents))
        found, us = _keep(found, np.asarray(kept_us)[order], least, self.search.most)
        positions, values = found[0].copy(), found[1].copy()
        best_us = us.copy()
        for i, u in enumerate(us):
            step = _step(self.templates.side(u, k))
            # the coarser octave's scale is good to one of its steps, two of
            # these: every trial within two steps is scored, then the climb
            # goes on in the direction that rose
            for d in _BRACKET:
                trial = min(max(u + d * step, u_lo), u_hi)
                got = self.peak(k, positions[i], trial, _TRIAL_RADIUS, examined)
                if got is not None and got[1] > values[i]:
                    (positions[i], values[i]), best_us[i] = got, trial
            edge = abs(best_us[i] - u) > (max(_BRACKET) - 0.5) * step
            d = np.sign(best_us[i] - u) if edge else 0
            for _ in range(_SCALE_CLIMBS if d else 0):
                trial = min(max(best_us[i] + d * step, u_lo), u_hi)
                got = self.peak(k, positions[i], trial, _TRIAL_RADIUS, examined)
                if got is None or got[1] <= values[i]:
                    break
                (positions[i], values[i]), best_us[i] = got, trial
        return _merge_scaled(((positions, values, found[2]), best_us))


#: Trial scales scored around a candidate's, in grid steps, before the climb.
_BRACKET = (-2, -1, 1, 2)

#: Half-width of the window scored around a candidate at a trial scale.
_TRIAL_RADIUS = 2


def _mean(a: np.ndarray) -> float:
    """Mean of a float32 ``(h, w)`` or ``(h, w, c)`` array: one OpenCV pass
    with double accumulation up to four channels (numpy's mean costs several
    times more on the small windows a climb reads), numpy's beyond."""
    channels = a.shape[2] if a.ndim == 3 else 1
    if channels > 4:
        return float(a.mean(dtype=np.float64))
    return sum(cv2.mean(a)[:channels]) / channels


def _flat(window: np.ndarray) -> bool:
    """True where a float32 ``(h, w)`` or ``(h, w, c)`` window is flat
    (FLAT_TOLERANCE), channels jointly: from OpenCV's per-channel means and
    deviations up to four channels, numpy's beyond."""
    if window.ndim == 3 and window.shape[2] > 4:
        mean = float(window.mean(dtype=np.float64))
        square = float(np.mean(np.square(window, dtype=np.float64)))
    else:
        means, stds = cv2.meanStdDev(window)
        n = len(means)
        mean = sum(float(m) for m in means[:, 0]) / n
        square = sum(float(s * s + m * m) for m, s in zip(means[:, 0], stds[:, 0])) / n
    return _is_flat(math.sqrt(max(square - mean * mean, 0.0)), math.sqrt(square))


def _zncc(window: np.ndarray, template: np.ndarray) -> float | None:
    """ZNCC of a window and a template of its shape (channels jointly), None
    where the window is flat."""
    if _flat(window):
        return None
    a = window - np.float32(_mean(window))
    b = template - np.float32(_mean(template))
    ab, aa, bb = float(np.vdot(a, b)), float(np.vdot(a, a)), float(np.vdot(b, b))
    return min(max(ab / math.sqrt(aa * bb), -1.0), 1.0)


def _scores(scorer, region):
    """ZNCC of ``scorer``'s template at every position of ``region``, or None
    where the best window is flat.

    Grey templates take one OpenCV call (``TM_CCOEFF_NORMED`` of the region
    less its mean, after the scorer's blur): a hill climb scores many small
    regions, and there the exact scorer's integral images and flat-window map
    cost several times the correlation. Only the best window is checked for
    flatness, which is all a climb reads. Colour of up to four channels has
    float32 window moments, as the coarse octaves do; more channels go
    through the scorer.
    """
    if region.shape[-1] > 4:
        return _defined(scorer(region))
    if region.shape[-1] > 1:  # colour: float32 moments, flat windows marked
        if scorer.blur:
            region = cv2.GaussianBlur(region[0], (0, 0), scorer.blur)[None]
        return _defined(scorer._rough(*centred(plane_of(region)))[None])
    plane = region[0, :, :, 0]
    if scorer.blur:
        plane = cv2.GaussianBlur(plane, (0, 0), scorer.blur)
    plane = plane - np.float32(_mean(plane))
    scores = cv2.matchTemplate(
        plane, scorer.zero_mean[0, :, :, 0], cv2.TM_CCOEFF_NORMED
    )
    _, _, _, (x, y) = cv2.minMaxLoc(scores)
    if _flat(plane[y : y + scorer.shape[1], x : x + scorer.shape[2]]):
        return _defined(scorer(region))  # the exact map marks every flat window
    return scores[None]


def _defined(scores: np.ndarray) -> np.ndarray | None:
    """``scores`` with flat windows (NaN) at -inf, or None where all are flat."""
    return None if np.isnan(scores).all() else np.nan_to_num(scores, nan=-np.inf)


def _peak(level, scorer, start, radius, fit):
    """Hill climb from ``start`` (windows of +-``radius``, moved while the best
    lies on a window's edge): the best whole-pixel position, the ZNCC of the
    sub-pixel peak around it and the peak's offset from that position, from the
    same window's scores, as ``fit`` (:func:`_vertex` or :func:`parabolas`)
    places it; None where every window in reach is flat."""
    last = [n - t for n, t in zip(level.shape[:3], scorer.shape)]
    centre = [min(max(int(c), 0), n) for c, n in zip(start, last)]
    best = None
    for _ in range(_MAX_CLIMBS):
        lo = [max(c - radius, 0) for c in centre]
        hi = [min(c + radius, n) for c, n in zip(centre, last)]
        region = level[tuple(slice(a, b + t) for a, b, t in zip(lo, hi, scorer.shape))]
        scores = _scores(scorer, region)
        if scores is None:
            break
        at = np.unravel_index(np.argmax(scores), scores.shape)
        if best is not None and scores[at] <= best[1][best[2]]:
            break
        best = ([a + i for a, i in zip(lo, at)], scores, at)
        on_edge = [
            (i == 0 and a > 0) or (i == b - a and b < n)
            for i, a, b, n in zip(at, lo, hi, last)
        ]
        if not any(on_edge):
            break
        centre = best[0]
    if best is None:
        return None
    position, scores, at = best
    value = float(scores[at])
    free = [ax for ax in range(3) if 0 < at[ax] < scores.shape[ax] - 1]
    shift = np.zeros(3)
    if free:
        shift[free], gain = fit(scores, at, free)
        value = min(value + gain, 1.0)
    return np.array(position), value, shift
