"""A match's corner and scale refined continuously, by maximising ZNCC.

A search over scales finds each candidate on a grid of trial scales and whole
pixels. This module moves it off that grid: the corner ``c`` and the spacing
``f`` (image pixels per template pixel) that maximise the ZNCC between the
template and the image sampled at ``c + f * q`` for every template pixel ``q``.
It is the enhanced correlation coefficient (ECC) maximisation of Evangelidis
and Psarakis [1]_ for a warp of translation and isotropic scale: each step
linearises the sampled image in the three parameters (its gradients times
``(1, 0, q_y)``, ``(0, 1, q_x)``) and takes the step that maximises the
correlation of the linearised window with the template, which is closed-form.
A start within a pixel or two and a few percent of scale converges in three to
five steps, to a small fraction of a pixel.

The image is sampled on the template's grid, so every step scores the same
number of pixels whatever the scale; where ``f > 1`` (template pixels coarser
than the image's) the image is blurred first by the variance the coarser
sampling lacks (1/4 pixel squared per pixel), as
:mod:`~napari_pyramids.core.scale_search` does for its scores.

References
----------
.. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric Image Alignment Using
   Enhanced Correlation Coefficient Maximization", IEEE Trans. Pattern Analysis
   and Machine Intelligence 30(10), 1858-1865, 2008.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from napari_pyramids.core.zncc import FLAT_TOLERANCE

__all__ = ["Fit", "fit_all", "warp"]

#: Largest move of one step: a pixel of the corner, 5 % of the scale. The
#: linearisation holds over about a pixel; longer steps overshoot.
_MOST_SHIFT = 1.0
_MOST_SCALE = 0.05

#: Spacing below which the image is sampled as it is (a blur of less than a
#: tenth of a pixel changes nothing measurable).
_BLUR_FROM = 1.02


@functools.lru_cache(maxsize=64)
def _grid(h: int, w: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every template pixel (repeated per channel)."""
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    if channels > 1:
        rows, cols = (np.repeat(a[..., None], channels, axis=-1) for a in (rows, cols))
    return rows, cols


def warp(region: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``region`` sampled at ``matrix @ (x, y, 1)`` for each pixel of a ``size``
    (width, height) output, bicubic, the border replicated; a channel axis is
    kept (length 1 too), more than four channels go one at a time."""
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    if region.ndim == 3 and region.shape[2] > 4:
        planes = [warp(region[..., c], matrix, size) for c in range(region.shape[2])]
        return np.stack(planes, axis=-1)
    out = cv2.warpAffine(
        region, matrix, size, flags=flags, borderMode=cv2.BORDER_REPLICATE
    )
    return out.reshape(size[::-1] + region.shape[2:])


class Fit:
    """One template refined against one image plane.

    ``plane``: ``(H, W)`` or ``(H, W, C)``, any real dtype; ``template``: float32 of the
    plane's channels, blurred as the plane's level is; ``bounds``: the smallest
    and largest spacing ``f`` allowed; ``blur``: Gaussian sigma (pixels) the
    plane is blurred by before sampling, where the template is blurrier than
    the plane (enlarged).
    """

    def __init__(self, plane: np.ndarray, template: np.ndarray, bounds, blur=0.0):
        self.plane = plane
        self.blur = blur
        self.h, self.w = template.shape[:2]
        t = template - np.float32(template.mean())
        norm = float(np.linalg.norm(t))
        #: the template, zero-mean with unit norm, as a vector (None if flat)
        self.t = (t / np.float32(norm)).ravel() if norm > 0 else None
        self.qy, self.qx = _grid(
            self.h, self.w, template.shape[2] if template.ndim == 3 else 1
        )
        H, W = plane.shape[:2]
        fits = min((H - 1) / max(self.h - 1, 1), (W - 1) / max(self.w - 1, 1))
        self.bounds = (bounds[0], min(bounds[1], fits))

    def inside(self, cy: float, cx: float, f: float) -> tuple[float, float, float]:
        """The nearest corner and spacing whose box lies in the plane and
        whose spacing lies within the bounds."""
        f = min(max(f, self.bounds[0]), self.bounds[1])
        H, W = self.plane.shape[:2]
        cy = min(max(cy, 0.0), H - 1 - f * (self.h - 1))
        cx = min(max(cx, 0.0), W - 1 - f * (self.w - 1))
        return cy, cx, f

    def step(self, cy: float, cx: float, f: float):
        """``(zncc, move)`` at corner ``(cy, cx)`` and spacing ``f``: the ZNCC
        there and the ECC step ``(dy, dx, df)`` (None where the linearised
        problem is singular); None where the window is flat."""
        h, w, plane = self.h, self.w, self.plane
        H, W = plane.shape[:2]
        # the window with a pixel of margin all round, for central differences
        y0, x0 = max(int(cy - f) - 3, 0), max(int(cx - f) - 3, 0)
        y1, x1 = min(int(cy + f * h) + 5, H), min(int(cx + f * w) + 5, W)
        region = plane[y0:y1, x0:x1].astype(np.float32, copy=False)
        blur = self.blur**2 + (0.25 * (f * f - 1) if f > _BLUR_FROM else 0.0)
        if blur > 0:
            region = cv2.GaussianBlur(region, (0, 0), math.sqrt(blur))
        matrix = np.array([[f, 0.0, cx - f - x0], [0.0, f, cy - f - y0]])
        big = warp(region, matrix, (w + 2, h + 2))
        window = big[1:-1, 1:-1]
        # rows: the Jacobian's three columns (the window's change with the
        # corner's y, x and the spacing), then the window less its mean
        rows = np.empty((4,) + window.shape, np.float32)
        np.subtract(big[2:, 1:-1], big[:-2, 1:-1], out=rows[0])
        np.subtract(big[1:-1, 2:], big[1:-1, :-2], out=rows[1])
        rows[:2] *= np.float32(0.5 / f)  # gradients per image pixel
        np.multiply(rows[0], self.qy, out=rows[2])
        rows[2] += rows[1] * self.qx
        mean = float(window.mean(dtype=np.float64))
        np.subtract(window, np.float32(mean), out=rows[3])
        rows = rows.reshape(4, -1)
        products = (rows @ rows.T).tolist()
        var = products[3][3]  # n x the window's variance
        if var <= FLAT_TOLERANCE**2 * (var + rows.shape[1] * mean * mean):
            return None
        with_t = (rows @ self.t).tolist()
        zncc = min(max(with_t[3] / math.sqrt(var), -1.0), 1.0)
        sums = rows[:3].sum(axis=1, dtype=np.float64).tolist()
        return zncc, _ecc_move(products, sums, with_t, rows.shape[1], f)


def _ecc_move(products, sums, with_t, n, f):
    """The ECC step (Evangelidis & Psarakis, section 3) from the products of
    the Jacobian's columns and the centred window (``products``, 4 x 4, the
    window last), the columns' sums and their products with the unit
    zero-mean template (``with_t``, the window's last), limited to
    _MOST_SHIFT and _MOST_SCALE; None where the columns are dependent."""
    # the columns centred: J^T J less n times the products of their means
    g = [[products[i][j] - sums[i] * sums[j] / n for j in range(3)] for i in range(3)]
    jv = [products[i][3] for i in range(3)]
    jt, tv, var = with_t[:3], with_t[3], products[3][3]
    solved = _solve3(g, jv, jt)
    if solved is None:
        return None
    gv, gt = solved
    residual = var - _dot(jv, gv)  # what of the window the warp cannot explain
    along = tv - _dot(jt, gv)
    reach = max(_dot(jt, gt), 1e-12)
    if along > 0:
        weight = residual / along
    else:
        weight = max(math.sqrt(max(residual, 0.0) / reach), (_dot(jt, gv) - tv) / reach)
    move = [weight * a - b for a, b in zip(gt, gv)]
    longest = max(
        abs(move[0]) / _MOST_SHIFT,
        abs(move[1]) / _MOST_SHIFT,
        abs(move[2]) / (_MOST_SCALE * f),
        1.0,
    )
    return [d / longest for d in move]


def _dot(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _solve3(g, *rhs):
    """``g^-1 b`` for each ``b`` of ``rhs``, ``g`` a symmetric 3 x 3 (nested
    lists), by its adjugate (numpy's solver costs more than the whole step at
    this size); None where ``g`` is near singular."""
    (a, b, c), (_, d, e), (_, _, k) = g
    adj = (
        (d * k - e * e, c * e - b * k, b * e - c * d),
        (c * e - b * k, a * k - c * c, b * c - a * e),
        (b * e - c * d, b * c - a * e, a * d - b * b),
    )
    det = a * adj[0][0] + b * adj[0][1] + c * adj[0][2]
    if not det > 1e-12 * a * d * k:
        return None
    return [[_dot(row, x) / det for row in adj] for x in rhs]


def fit_all(fits, starts, *, least: int, margin: float, steps: int, tol: float):
    """Refine candidate ``i`` (:class:`Fit` ``fits[i]`` from ``starts[i]`` =
    ``(cy, cx, f)``), all together, a step each per round. After each round
    those more than ``margin`` below the best score so far are dropped (at
    least ``least`` stay), the margin halving from round to round down to
    :data:`_SHRINK_TO` of it: the fits gain little after their first steps, so
    a candidate far behind then stays behind. A fit stops after ``steps``
    steps, or when a step moves the corner and the template's far corner by
    less than ``tol`` pixels. Returns ``(cy, cx, f, zncc)`` of each one's best
    point, None for those dropped or flat."""
    best = [None] * len(fits)
    going = {}  # candidate -> (point, its next move, None when it has stopped)
    for i, (fit, start) in enumerate(zip(fits, starts)):
        point = fit.inside(*start)
        got = None if fit.t is None else fit.step(*point)
        if got is not None:
            best[i] = (*point, got[0])
            going[i] = (point, got[1])
    alive = [i for i in range(len(fits)) if best[i] is not None]
    for round_ in range(steps + 1):
        alive.sort(key=lambda i: -best[i][3])
        if alive:
            cut = best[alive[0]][3] - margin * max(0.5**round_, _SHRINK_TO)
            alive = [j for r, j in enumerate(alive) if r < least or best[j][3] >= cut]
        if round_ == steps:
            break
        for i in alive:
            point, move = going[i]
            if move is None:
                continue
            fit = fits[i]
            point = fit.inside(*(p + d for p, d in zip(point, move)))
            got = fit.step(*point)
            if got is None:  # flat there: it keeps its best point
                going[i] = (point, None)
                continue
            if got[0] > best[i][3]:
                best[i] = (*point, got[0])
            far = max(abs(move[0]), abs(move[1]), abs(move[2]) * max(fit.h, fit.w))
            going[i] = (point, None if far < tol else got[1])
    kept = set(alive)
    return [b if i in kept else None for i, b in enumerate(best)]


#: Fraction of the margin below which fit_all's margin stops shrinking.
_SHRINK_TO = 0.25
