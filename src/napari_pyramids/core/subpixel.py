"""Sub-pixel peaks of a ZNCC map: the vertex of a quadratic fitted to the
scores around the best whole pixel (least squares over the 3-wide
neighbourhood), or one parabola per axis where that quadratic has no maximum.
"""

from __future__ import annotations

import functools
import math

import numpy as np


def _subpixel(level, scorer, position, known=None):
    """``(corner, peak, score)``: the sub-pixel ``(z, y, x)`` corner, the vertex
    of the quadratic fitted (least squares) to the ZNCC of ``position`` and its
    neighbours, within half a pixel of it; the fitted value there (at most 1);
    and the ZNCC at ``position``. Axes where the peak lies on the image border
    (or that have length 1) keep the integer position; where the fitted surface
    has no maximum, each axis gets its own parabola through three scores.
    ``known``: ``(scores, at)``, a ZNCC map already scored whose entry ``at`` is
    ``position``; used where it holds the neighbours, instead of scoring them
    again."""
    last = [n - t for n, t in zip(level.shape[:3], scorer.shape)]
    lo = [max(p - 1, 0) for p in position]
    hi = [min(p + 1, n) for p, n in zip(position, last)]
    free = [ax for ax in range(3) if lo[ax] < position[ax] < hi[ax]]
    if known is not None and all(
        0 < known[1][ax] < known[0].shape[ax] - 1 for ax in free
    ):
        scores, centre = known
    else:
        region = level[tuple(slice(a, b + t) for a, b, t in zip(lo, hi, scorer.shape))]
        scores = scorer(region)
        centre = tuple(p - a for p, a in zip(position, lo))
    shift = np.zeros(3)
    score = peak = float(scores[centre])
    if free and np.isfinite(score):
        shift[free], gain = _vertex(scores, centre, free)
        peak = min(score + gain, 1.0)
    return tuple(float(p + d) for p, d in zip(position, shift)), peak, score


@functools.cache
def _quadratic_fit(n: int) -> np.ndarray:
    """Least-squares operator from the ``3**n`` scores of a 3-wide neighbourhood
    (in :func:`numpy.ndindex` order) to the coefficients of a quadratic in ``n``
    variables: constant, ``n`` linear terms, then ``x_i x_j`` for ``i <= j``."""
    offsets = np.array(list(np.ndindex(*(3,) * n)), float) - 1
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    design = np.column_stack(
        [np.ones(len(offsets)), offsets]
        + [offsets[:, i] * offsets[:, j] for i, j in pairs]
    )
    return np.linalg.pinv(design)


@functools.cache
def _upper(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the upper triangle of an ``n x n`` matrix, in the order of
    :func:`_quadratic_fit`'s ``x_i x_j`` terms."""
    return np.triu_indices(n)


def _maximum(hessian, gradient):
    """Where the quadratic with this Hessian and gradient (at 0) is largest, or
    None when it has no maximum (Hessian not negative definite). One and two
    variables in closed form (the common cases, called per candidate)."""
    if len(gradient) == 1:
        return -gradient / hessian[0] if hessian[0, 0] < 0 else None
    if len(gradient) == 2:
        (a, b), (_, c) = hessian
        det = a * c - b * b
        if a >= 0 or det <= 0:
            return None
        return (
            -np.array(
                [c * gradient[0] - b * gradient[1], a * gradient[1] - b * gradient[0]]
            )
            / det
        )
    if np.all(np.linalg.eigvalsh(hessian) < 0):
        return np.linalg.solve(hessian, -gradient)
    return None


def _vertex(scores, centre, free):
    """Offset of the maximum of a quadratic through the 3**len(free) scores
    around ``centre`` (a 3-wide neighbourhood along each ``free`` axis), and how
    much higher than the centre's score the quadratic is there (>= 0)."""
    n = len(free)
    block = tuple(
        slice(c - 1, c + 2) if ax in free else c for ax, c in enumerate(centre)
    )
    values = scores[block].ravel().astype(np.float64)
    if np.isfinite(values).all():  # every neighbour scored
        coef = _quadratic_fit(n) @ values
        gradient = coef[1 : n + 1]
        hessian = np.zeros((n, n))
        hessian[_upper(n)] = coef[n + 1 :]
        hessian = hessian + hessian.T  # 2 c_ii on the diagonal, c_ij off it
        shift = _maximum(hessian, gradient)
        if shift is not None and np.all(np.abs(shift) <= 1):
            shift = np.clip(shift, -0.5, 0.5)
            peak = coef[0] + gradient @ shift + shift @ hessian @ shift / 2
            return shift, max(float(peak) - float(scores[centre]), 0.0)
    return parabolas(scores, centre, free)  # no maximum fitted


def parabolas(scores, centre, free):
    """:func:`vertex` one axis at a time: along each ``free`` axis, the vertex
    of the parabola through the centre's score and its two neighbours, and the
    rise there."""
    shift, gain = np.zeros(len(free)), 0.0
    for i, ax in enumerate(free):
        before, after = list(centre), list(centre)
        before[ax] -= 1
        after[ax] += 1
        shift[i], rise = vertex(
            float(scores[tuple(before)]),
            float(scores[centre]),
            float(scores[tuple(after)]),
        )
        gain += rise
    return shift, gain


def vertex(before: float, at: float, after: float) -> tuple[float, float]:
    """Offset (within half a pixel) of the vertex of the parabola through three
    neighbouring scores, and its rise above the middle one; (0, 0) where the
    three are not concave (or not all defined)."""
    curve = before - 2 * at + after
    if not (math.isfinite(curve) and curve < 0):
        return 0.0, 0.0
    shift = min(max((before - after) / (2 * curve), -0.5), 0.5)
    return shift, max(-curve * shift**2 / 2, 0.0)
