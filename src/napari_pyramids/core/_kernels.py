"""The REDUCE and EXPAND kernels behind one interface, in two backends.

Both backends compute exactly the same Burt & Adelson steps; they differ only in
speed and reach:

``"opencv"``
    ``cv2.pyrDown`` / ``cv2.pyrUp`` for the binomial kernel (``a == 0.375``) and
    ``cv2.sepFilter2D`` on the zero-filled grid for any other ``a``. Fast,
    multi-threaded, but 2-D only (y, x) and float32/float64 only.
``"numpy"``
    Gathers along one axis at a time, any ``a``, any axis, any float dtype.
    Used for the z axis of volumes and wherever OpenCV is missing.

Arrays handed to this module are already float and laid out as
``(frames, *spatial, channels)``: :mod:`napari_pyramids.core.pyramid` does the
moving and reshaping, so the kernels never see user-facing conventions.

The definitions (Burt & Adelson 1983, "The Laplacian Pyramid as a Compact Image
Code"; OpenCV's ``BORDER_REFLECT_101``):

* generating kernel ``w = [1/4 - a/2, 1/4, a, 1/4, 1/4 - a/2]``;
* REDUCE of a length-``n`` axis: filter with ``w`` under a mirror border that
  does not repeat the edge sample, keep samples ``0, 2, 4, ...`` (``ceil(n/2)``);
* EXPAND to length ``N`` (``N`` in ``{2m - 1, 2m}``): put the ``m`` samples on the
  even positions of a zero-filled length-``2m`` grid, filter with ``2 w`` under
  the same border and keep the first ``N`` samples. That is what ``cv2.pyrUp``
  computes, odd sizes included. A length-1 axis is left unchanged by both steps.
"""

from __future__ import annotations

import numpy as np

DEFAULT_A = 0.375
_TAPS = np.arange(-2, 3)

try:  # OpenCV is a declared dependency, but keep the engine usable without it.
    import cv2
except ImportError:  # pragma: no cover - exercised only on broken installs
    cv2 = None

BACKENDS = ("auto", "opencv", "numpy")


def generating_kernel(a: float = DEFAULT_A) -> np.ndarray:
    """Return Burt & Adelson's 5-tap generating kernel for parameter ``a``."""
    return np.array([0.25 - a / 2, 0.25, a, 0.25, 0.25 - a / 2])


def reflect101(index: np.ndarray, n: int) -> np.ndarray:
    """Map indices into ``range(n)`` with a mirror that skips the edge sample.

    Periodic with period ``2 (n - 1)``, so indices far outside (tiny axes) still
    land where OpenCV's ``borderInterpolate(BORDER_REFLECT_101)`` puts them.
    """
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.mod(index, period)
    return np.where(index >= n, period - index, index)


def resolve_backend(backend: str, *, dtype: np.dtype) -> str:
    """Pick the backend that will run a 2-D step; validate the user's choice."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    opencv_ok = cv2 is not None and dtype in (np.float32, np.float64)
    if backend == "opencv" and not opencv_ok:
        raise ValueError(
            "backend='opencv' needs OpenCV (opencv-python-headless) and float32 "
            f"or float64 data (got {np.dtype(dtype)}); use backend='numpy'"
        )
    if backend == "auto":
        return "opencv" if opencv_ok else "numpy"
    return backend


# --------------------------------------------------------------------- numpy
def reduce_axis(x: np.ndarray, axis: int, a: float = DEFAULT_A) -> np.ndarray:
    """REDUCE along one axis: filter with the generating kernel, keep even samples."""
    n = x.shape[axis]
    if n == 1:
        return x.copy()
    w = generating_kernel(a).astype(x.dtype)
    centres = 2 * np.arange((n + 1) // 2)
    out = None
    for weight, tap in zip(w, _TAPS):
        if weight == 0:
            continue
        term = np.take(x, reflect101(centres + tap, n), axis=axis)
        term *= weight
        out = term if out is None else np.add(out, term, out=out)
    return out


def expand_axis(
    x: np.ndarray, axis: int, size: int, a: float = DEFAULT_A
) -> np.ndarray:
    """EXPAND along one axis to ``size`` samples (``size`` in ``{2m - 1, 2m}``).

    The zero-filled grid is never built: reflection keeps the parity of an index,
    so an even output only meets taps that land on even (filled) positions and an
    odd output only odd taps. Each tap is one gather from ``x``.
    """
    grid = 2 * x.shape[axis]
    w = 2 * generating_kernel(a).astype(x.dtype)
    shape = list(x.shape)
    shape[axis] = size
    out = np.zeros(shape, dtype=x.dtype)
    for parity in (0, 1):
        positions = np.arange(parity, size, 2)
        target = [slice(None)] * x.ndim
        target[axis] = slice(parity, size, 2)
        acc = out[tuple(target)]
        for weight, tap in zip(w, _TAPS):
            if (parity + tap) % 2 or weight == 0:
                continue  # this tap lands on an empty (odd) grid position
            source = reflect101(positions + tap, grid) // 2
            acc += weight * np.take(x, source, axis=axis)
    return out


# -------------------------------------------------------------------- opencv
def _run_per_frame(x: np.ndarray, out_hw: tuple[int, int], step) -> np.ndarray:
    """Apply a 2-D OpenCV ``step(src, dst)`` to each frame of ``(F, H, W, C)``.

    OpenCV wants (H, W) or (H, W, C) frames; results are written straight into
    one preallocated output, so no per-level stacking copy is made.
    """
    f, _, _, c = x.shape
    out = np.empty((f,) + tuple(out_hw) + ((c,) if c > 1 else ()), dtype=x.dtype)
    frames = x[..., 0] if c == 1 else x
    for src, dst in zip(frames, out):
        step(np.ascontiguousarray(src), dst)
    return out[..., None] if c == 1 else out


#: Output columns at the right end of a frame that :func:`_reduce_frame`
#: recomputes: more than OpenCV's widest vector (16 floats) plus its border.
_TAIL = 32


def _reduce_frame(src: np.ndarray, dst: np.ndarray, step) -> None:
    """Run a REDUCE ``step(src, dst)`` so each output is independent of the frame width.

    OpenCV filters a row with vector code and its last columns (the row width
    modulo the vector width) with scalar code that rounds differently. A pixel
    near the right end of a frame then differs by an ulp from the same pixel
    computed inside a wider frame, e.g. the whole image versus one block of the
    lazy engine, and after rounding to an integer dtype by 1. So the last
    ``_TAIL`` output columns are computed again from a strip padded on the right
    with the image's own mirror (BORDER_REFLECT_101, which is what REDUCE uses):
    inside the padded strip they fall in the vector code too. Rows need nothing:
    OpenCV combines whole rows, whatever their position.
    """
    step(src, dst)
    start = max(0, dst.shape[1] - _TAIL - 2)  # 2 more: the strip's own left border
    strip = cv2.copyMakeBorder(
        src[:, 2 * start :], 0, 0, 0, 2 * _TAIL, cv2.BORDER_REFLECT_101
    )
    out = np.empty((dst.shape[0], (strip.shape[1] + 1) // 2) + dst.shape[2:], dst.dtype)
    step(strip, out)
    keep = 0 if start == 0 else 2
    dst[:, start + keep :] = out[:, keep : dst.shape[1] - start]


def reduce_yx_opencv(x: np.ndarray, a: float = DEFAULT_A) -> np.ndarray:
    """REDUCE the (y, x) axes of an ``(F, H, W, C)`` array with OpenCV."""
    h, w = x.shape[1:3]
    out_hw = ((h + 1) // 2, (w + 1) // 2)
    if a == DEFAULT_A:

        def step(src, dst):
            cv2.pyrDown(src, dst=dst, dstsize=(dst.shape[1], dst.shape[0]))

    else:
        k = generating_kernel(a)

        def step(src, dst):
            full = cv2.sepFilter2D(src, -1, k, k, borderType=cv2.BORDER_REFLECT_101)
            dst[...] = full[::2, ::2]

    return _run_per_frame(x, out_hw, lambda src, dst: _reduce_frame(src, dst, step))


def expand_yx_opencv(
    x: np.ndarray, size_yx: tuple[int, int], a: float = DEFAULT_A
) -> np.ndarray:
    """EXPAND the (y, x) axes of an ``(F, H, W, C)`` array to ``size_yx``."""
    h, w = x.shape[1:3]
    out_h, out_w = size_yx
    if a == DEFAULT_A:

        def step(src, dst):
            cv2.pyrUp(src, dst=dst, dstsize=(out_w, out_h))

    else:
        k = 2 * generating_kernel(a)

        def step(src, dst):
            grid = np.zeros((2 * h, 2 * w) + src.shape[2:], dtype=src.dtype)
            grid[::2, ::2] = src
            full = cv2.sepFilter2D(grid, -1, k, k, borderType=cv2.BORDER_REFLECT_101)
            dst[...] = full[:out_h, :out_w]

    return _run_per_frame(x, size_yx, step)


# ------------------------------------------------------------------- dispatch
def reduce_yx(x: np.ndarray, a: float, backend: str) -> np.ndarray:
    """REDUCE the (y, x) axes (1 and 2) of an ``(F, H, W, C)`` float array."""
    if resolve_backend(backend, dtype=x.dtype) == "opencv":
        return reduce_yx_opencv(x, a)
    return reduce_axis(reduce_axis(x, 1, a), 2, a)


def expand_yx(
    x: np.ndarray, size_yx: tuple[int, int], a: float, backend: str
) -> np.ndarray:
    """EXPAND the (y, x) axes (1 and 2) of an ``(F, H, W, C)`` float array."""
    if resolve_backend(backend, dtype=x.dtype) == "opencv":
        return expand_yx_opencv(x, size_yx, a)
    return expand_axis(expand_axis(x, 1, size_yx[0], a), 2, size_yx[1], a)
