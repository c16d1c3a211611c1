"""A match's corner and scale refined continuously, by maximising ZNCC.

A search over scales finds each candidate on a grid of trial scales and whole
pixels. This module moves it off that grid: the corner ``c`` and the spacing
``f`` (image pixels per template pixel) that maximise the ZNCC between the
template and the image sampled at ``c + f * q`` for every template pixel ``q``.
It is the enhanced correlation coefficient (ECC) maximisation of Evangelidis
and Psarakis [1]_ for a warp of translation and isotropic scale, in its
inverse-compositional form: each step linearises the template in the three
parameters of a small warp of its own (its gradients times ``(1, 0, q_y)``,
``(0, 1, q_x)``), takes the closed-form step that maximises the correlation of
the linearised template with the sampled window, and composes that warp's
inverse into the image's. The template's side is the same at every step, so
it is worked out once per template; a step samples the image once. A start
within a pixel or two and a few percent of scale converges in three to five
steps, to a small fraction of a pixel.

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
from typing import NamedTuple

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


def warp(
    region: np.ndarray, matrix: np.ndarray, size: tuple[int, int], cubic: bool = True
) -> np.ndarray:
    """``region`` sampled at ``matrix @ (x, y, 1)`` for each pixel of a ``size``
    (width, height) output, bicubic (bilinear where not ``cubic``), the border
    replicated; a channel axis is kept (length 1 too), more than four channels
    go one at a time."""
    flags = (cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    if region.ndim == 3 and region.shape[2] > 4:
        planes = [
            warp(region[..., c], matrix, size, cubic) for c in range(region.shape[2])
        ]
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

    The steps are inverse compositional: the linearisation is the template's
    (its gradients times the warp's Jacobian), made once here, and each step
    warps the template's way back into the image's warp; a step then costs one
    sampling of the image and one product with four rows.
    """

    def __init__(self, plane: np.ndarray, template: np.ndarray, bounds, blur=0.0):
        self.plane = plane
        self.blur = blur
        self.h, self.w = template.shape[:2]
        H, W = plane.shape[:2]
        fits = min((H - 1) / max(self.h - 1, 1), (W - 1) / max(self.w - 1, 1))
        self.bounds = (bounds[0], min(bounds[1], fits))
        t = template - np.float32(np.add.reduce(template, axis=None) / template.size)
        norm = math.sqrt(float(np.vdot(t, t)))
        unit = t * np.float32(1 / norm) if norm > 0 else None
        #: the template, zero-mean with unit norm, as a vector (None if flat)
        self.t = None if unit is None else unit.reshape(-1)
        self.rows = self.solve = None
        if unit is not None and min(self.h, self.w) > 1:
            self._linearise(unit)

    def _linearise(self, unit: np.ndarray) -> None:
        """The template's side of every step: ``rows`` (4, n), the Jacobian's
        three columns (the unit template's change with a shift of its corner
        along y and x and with its spacing), centred, then the template; and
        what of the ECC step depends on them alone."""
        qy, qx = _grid(self.h, self.w, unit.shape[2] if unit.ndim == 3 else 1)
        rows = np.empty((4,) + unit.shape, np.float32)
        rows[0], rows[1] = _gradient(unit, 0), _gradient(unit, 1)
        np.multiply(rows[0], qy, out=rows[2])
        rows[2] += rows[1] * qx
        rows[3] = unit
        rows = rows.reshape(4, -1)
        rows[:3] -= np.add.reduce(rows[:3], axis=1)[:, None] / np.float32(rows.shape[1])
        self.rows = rows
        products = (rows[:3] @ rows.T).tolist()
        gram = [row[:3] for row in products]
        with_unit = [row[3] for row in products]
        self.solve = _inverse3(gram)
        if self.solve is not None:
            #: G^-1 J^T t, and what of the unit template the warp cannot explain
            self.along_t = _apply(self.solve, with_unit)
            self.residual = 1.0 - _dot(with_unit, self.along_t)

    def inside(self, cy: float, cx: float, f: float) -> tuple[float, float, float]:
        """The nearest corner and spacing whose box lies in the plane and
        whose spacing lies within the bounds."""
        f = min(max(f, self.bounds[0]), self.bounds[1])
        H, W = self.plane.shape[:2]
        cy = min(max(cy, 0.0), H - 1 - f * (self.h - 1))
        cx = min(max(cx, 0.0), W - 1 - f * (self.w - 1))
        return cy, cx, f

    def sample(self, cy: float, cx: float, f: float) -> _Sample | None:
        """The image sampled at corner ``(cy, cx)`` and spacing ``f``, and the
        ZNCC there; None where the window is flat. :meth:`move` takes it on."""
        h, w, plane = self.h, self.w, self.plane
        # the window and a margin for the interpolation and the blur
        y0, x0 = max(int(cy) - 3, 0), max(int(cx) - 3, 0)
        y1, x1 = int(cy + f * h) + 4, int(cx + f * w) + 4
        region = plane[y0:y1, x0:x1].astype(np.float32, copy=False)
        blur = self.blur**2 + (0.25 * (f * f - 1) if f > _BLUR_FROM else 0.0)
        if blur > 0:
            region = cv2.GaussianBlur(region, (0, 0), math.sqrt(blur))
        matrix = np.array([[f, 0.0, cx - x0], [0.0, f, cy - y0]])
        # bilinear: a third of bicubic's cost, and as good a fit
        # (docs/search_calibration.md)
        window = warp(region, matrix, (w, h), cubic=False).reshape(-1)
        mean, std = cv2.meanStdDev(window)
        mean, var = float(mean[0, 0]), window.size * float(std[0, 0]) ** 2
        # var: n x the window's variance
        if var <= FLAT_TOLERANCE**2 * (var + window.size * mean * mean):
            return None
        window -= np.float32(mean)
        # the window's products with the Jacobian's columns and the template,
        # per unit of its norm
        with_window = (self.rows @ window * (1 / math.sqrt(var))).tolist()
        zncc = min(max(with_window[3], -1.0), 1.0)
        return _Sample(zncc, (cy, cx, f), with_window)

    def move(self, sample: _Sample):
        """The ECC step ``(dy, dx, df)`` from where ``sample`` was taken; None
        where the linearised problem is singular.

        ECC's closed-form step for the template (Evangelidis & Psarakis,
        section 3, the roles of image and template exchanged): the change
        ``d`` of the template's warp ``q -> d_c + (1 + d_f) q`` that maximises
        its correlation with the window, composed inversely into the image's
        warp, ``c -> c - f d_c / (1 + d_f)``, ``f -> f / (1 + d_f)``."""
        if self.solve is None:
            return None
        cy, cx, f = sample.point
        jw, tw = sample.with_window[:3], sample.with_window[3]
        gw = _apply(self.solve, jw)
        along = tw - _dot(jw, self.along_t)
        reach = max(_dot(jw, gw), 1e-12)
        if along > 0:
            weight = self.residual / along
        else:
            weight = max(
                math.sqrt(max(self.residual, 0.0) / reach),
                (_dot(jw, self.along_t) - tw) / reach,
            )
        dy, dx, df = (weight * a - b for a, b in zip(gw, self.along_t))
        if not 1 + df > 0.5:  # a step beyond the linearisation's reach
            df = -0.5
        shrink = 1 / (1 + df)
        return _limited([-f * dy * shrink, -f * dx * shrink, f * shrink - f], f)

    def step(self, cy: float, cx: float, f: float):
        """``(zncc, move)`` at corner ``(cy, cx)`` and spacing ``f``: the ZNCC
        there and the ECC step ``(dy, dx, df)`` (None where the linearised
        problem is singular); None where the window is flat."""
        sample = self.sample(cy, cx, f)
        return None if sample is None else (sample.zncc, self.move(sample))


class _Sample(NamedTuple):
    """The image sampled where :meth:`Fit.sample` was asked: the ZNCC there,
    the point ``(cy, cx, f)``, and the window's products with the rows of
    :attr:`Fit.rows` per unit of its norm."""

    zncc: float
    point: tuple[float, float, float]
    with_window: list[float]


def _gradient(a: np.ndarray, axis: int) -> np.ndarray:
    """The derivative of ``a`` (float32, ``(h, w)`` or ``(h, w, c)``) along
    ``axis`` (0 or 1): central differences, one-sided at the first and last
    entries, as np.gradient (OpenCV's at a fraction of its cost on small
    arrays: the replicated border halves the one-sided ones, doubled back)."""
    dx, dy = (1, 0) if axis == 1 else (0, 1)
    out = cv2.Sobel(
        a, cv2.CV_32F, dx, dy, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE
    ).reshape(a.shape)
    edges = np.swapaxes(out, 0, axis)
    edges[0] *= 2
    edges[-1] *= 2
    return out


def _limited(move, f):
    """``move`` shortened to at most _MOST_SHIFT pixels and _MOST_SCALE of the
    spacing ``f``."""
    longest = max(
        abs(move[0]) / _MOST_SHIFT,
        abs(move[1]) / _MOST_SHIFT,
        abs(move[2]) / (_MOST_SCALE * f),
        1.0,
    )
    return [d / longest for d in move]


def _dot(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _inverse3(g):
    """The inverse of ``g``, a symmetric 3 x 3 (nested lists), by its adjugate
    (numpy's solver costs more than a whole step at this size); None where
    ``g`` is near singular."""
    (a, b, c), (_, d, e), (_, _, k) = g
    adj = (
        (d * k - e * e, c * e - b * k, b * e - c * d),
        (c * e - b * k, a * k - c * c, b * c - a * e),
        (b * e - c * d, b * c - a * e, a * d - b * b),
    )
    det = a * adj[0][0] + b * adj[0][1] + c * adj[0][2]
    if not det > 1e-12 * a * d * k:
        return None
    return [[v / det for v in row] for row in adj]


def _apply(m, x) -> list[float]:
    """The 3 x 3 ``m`` times the 3-vector ``x``."""
    return [_dot(row, x) for row in m]


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
    # candidate -> (point, its sample there), the sample None once it has stopped
    going = {}
    for i, (fit, start) in enumerate(zip(fits, starts)):
        point = fit.inside(*start)
        sample = None if fit.t is None else fit.sample(*point)
        if sample is not None:
            best[i] = (*point, sample.zncc)
            going[i] = (point, sample)
    alive = [i for i in range(len(fits)) if best[i] is not None]
    for round_ in range(steps + 1):
        alive.sort(key=lambda i: -best[i][3])
        if alive:
            cut = best[alive[0]][3] - margin * max(0.5**round_, _SHRINK_TO)
            alive = [j for r, j in enumerate(alive) if r < least or best[j][3] >= cut]
        if round_ == steps:
            break
        for i in alive:
            point, sample = going[i]
            fit = fits[i]
            # the move is worked out only for those still followed
            move = None if sample is None else fit.move(sample)
            if move is None:  # stopped, or singular there: it keeps its best point
                going[i] = (point, None)
                continue
            point = fit.inside(*(p + d for p, d in zip(point, move)))
            sample = fit.sample(*point)
            if sample is not None and sample.zncc > best[i][3]:
                best[i] = (*point, sample.zncc)
            far = max(abs(move[0]), abs(move[1]), abs(move[2]) * max(fit.h, fit.w))
            going[i] = (point, None if far < tol else sample)
    kept = set(alive)
    return [b if i in kept else None for i, b in enumerate(best)]


#: Fraction of the margin below which fit_all's margin stops shrinking.
_SHRINK_TO = 0.25
