"""Gaussian and Laplacian pyramids (Burt & Adelson 1983) on numpy arrays.

Conventions (see DESIGN.md):

* The last two axes are spatial (y, x). ``channel_axis`` marks colour; with
  ``reduce_z=True`` the last three non-channel axes (z, y, x) are reduced. Any
  other leading axes (time, stacks) are processed frame by frame.
* Level 0 is the input. Octave ``k`` keeps sample ``2**k * j`` of level 0 at its
  pixel ``j``: as a napari layer it overlays the input with
  ``scale = base_scale * 2**k`` and the base translate.
* 8- and 16-bit integers are computed in float32, wider integers in float64
  (float32 holds every integer only up to 2**24, so an int32 image blended with
  itself would not come back); float32 stays float32 and float64 stays
  float64. Gaussian levels can be cast back to the input dtype on request;
  Laplacian bands are always float (they are signed).

References
----------
.. [1] P. J. Burt and E. H. Adelson, "The Laplacian Pyramid as a Compact Image
   Code", IEEE Trans. Communications 31(4), 532-540, 1983.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from napari_pyramids.core import _kernels
from napari_pyramids.core._kernels import DEFAULT_A
from napari_pyramids.core.checks import (
    as_real_array,
    check_finite,
    normalize_channel_axis,
)
from napari_pyramids.signatures import forwards_options

__all__ = [
    "DEFAULT_A",
    "DEFAULT_MIN_SIZE",
    "cast_like",
    "check_a",
    "check_kind",
    "equal_size_levels",
    "expand",
    "float_dtype",
    "gaussian_pyramid",
    "laplacian_pyramid",
    "iter_pyramid",
    "max_levels",
    "pyramid_depth",
    "pyramid_plan",
    "reconstruct",
    "reduce",
    "spatial_axes",
]

#: ``levels=None`` stops before the smallest reduced side would drop below this.
DEFAULT_MIN_SIZE = 8


# ------------------------------------------------------------------ checking
def float_dtype(dtype: np.dtype) -> np.dtype:
    """The float dtype work is done in: float64 for float64 and for integers
    wider than 16 bits (float32 would round them), float32 for the rest.

    float64 filters integers exactly up to 2**51 in magnitude; beyond, the
    REDUCE sums round, so 64-bit integers larger than that may come back one
    unit off (a relative error of 2**-52; never a wrap-around: the cast back
    clips at the dtype's bounds).
    """
    dtype = np.dtype(dtype)
    wide_int = np.issubdtype(dtype, np.integer) and dtype.itemsize > 2
    return np.dtype(np.float64 if dtype == np.float64 or wide_int else np.float32)


def spatial_axes(
    ndim: int, *, channel_axis: int | None = None, reduce_z: bool = False
) -> tuple[int, ...]:
    """Return the (non-negative) axes a pyramid reduces, for an array of ``ndim`` dims.

    Raises a ValueError naming the problem when the array has too few dimensions
    or ``channel_axis`` is out of range.
    """
    channel_axis = normalize_channel_axis(channel_axis, ndim)
    others = [ax for ax in range(ndim) if ax != channel_axis]
    need = 3 if reduce_z else 2
    if len(others) < need:
        what = "(z, y, x)" if reduce_z else "(y, x)"
        raise ValueError(
            f"a pyramid needs {need} spatial axes {what}, but the image has "
            f"{ndim} dimension(s)"
            + (" besides the channel axis" if channel_axis is not None else "")
            + "; pass a 2-D (y, x) image or a volume"
        )
    return tuple(others[-need:])


def max_levels(shape: Sequence[int], axes: Sequence[int]) -> int:
    """Number of levels (level 0 included) until the smallest reduced side is 1."""
    smallest = min(shape[ax] for ax in axes)
    return 1 + math.ceil(math.log2(smallest)) if smallest > 1 else 1


def _count_levels(
    shape: Sequence[int], axes: Sequence[int], levels: int | None, min_size: int
) -> int:
    most = max_levels(shape, axes)
    if levels is None:
        if min_size < 1:
            raise ValueError(f"min_size must be at least 1, got {min_size}")
        n, smallest = 1, min(shape[ax] for ax in axes)
        while n < most and math.ceil(smallest / 2) >= min_size:
            smallest = math.ceil(smallest / 2)
            n += 1
        return n
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)):
        raise TypeError(f"levels must be a whole number or None, got {levels!r}")
    if levels < 1:
        raise ValueError(
            f"levels must be at least 1 (level 0 is the image), got {levels}"
        )
    if levels > most:
        sides = "x".join(str(shape[ax]) for ax in axes)
        raise ValueError(
            f"levels={levels} is more than a {sides} image allows: its smallest side "
            f"reaches 1 pixel at level {most - 1}, so at most {most} levels; pass "
            f"levels<={most} or levels=None"
        )
    return int(levels)


#: Where OpenCV overflowed, the step is redone on its inputs times this power
#: of two (exact), which keeps its sums of up to 256 taps below the float maximum.
_RESCUE = 2.0**-10


def _checked(step, args: Sequence[np.ndarray], named: dict[str, np.ndarray]):
    """``step(*args)``, made sure that no NaN or inf comes out of it.

    The finite check of every public function here (REDUCE, EXPAND, pyramids,
    reconstruct, equal-size levels, blends). It looks at the result, one pass;
    only when that finds NaN or inf are the ``named`` inputs scanned, by
    :func:`check_finite`, which names and counts the bad values.

    Finite inputs and a non-finite result mean OpenCV overflowed: it sums the
    kernel taps before dividing (by 256 in pyrDown, 64 in pyrUp), so float32
    beyond about 1e36 (float64 beyond about 1e305) turns to inf where the
    average is finite. Those pixels, and only those, are computed again from
    the inputs scaled by ``_RESCUE``: binary scaling changes no rounding, and
    whether a pixel overflows depends on its neighbourhood only, so a pixel gets
    the same value in a whole image as in any block of it (the lazy engine).

    Returns the result and whether any pixel needed that. Integer inputs skip
    the check: they are far too small to overflow.
    """
    out = step(*args)
    if not any(np.issubdtype(x.dtype, np.floating) for x in named.values()):
        return out, False
    bad = ~np.isfinite(out)
    if not bad.any():
        return out, False
    for name, x in named.items():
        check_finite(x, name)
    with np.errstate(over="ignore"):  # a true overflow is raised just below
        out[bad] = step(*(x * _RESCUE for x in args))[bad] / _RESCUE
    if np.isfinite(out).all():
        return out, True
    peak = max(float(np.max(np.abs(x))) for x in named.values())
    raise ValueError(
        f"the result overflows {out.dtype}: {', '.join(named)} reach {peak:.3g}, "
        f"too near the largest {out.dtype} ({np.finfo(out.dtype).max:.3g}); "
        "divide by a power of two first (exact), or use float64"
    )


# -------------------------------------------------------------- array layout
class _Layout:
    """Moves an image to the kernel layout ``(frames, *spatial, channels)`` and back."""

    def __init__(self, ndim: int, channel_axis: int | None, reduce_z: bool):
        self.spatial = spatial_axes(ndim, channel_axis=channel_axis, reduce_z=reduce_z)
        self.channel_axis = None if channel_axis is None else channel_axis % ndim
        self.ndim = ndim

    def to_kernel(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        if self.channel_axis is None:
            x = x[..., None]
        else:
            x = np.moveaxis(x, self.channel_axis, -1)
        # Leading (frame) axes are everything before the spatial block.
        n_sp = len(self.spatial)
        lead = x.shape[: x.ndim - 1 - n_sp]
        return x.reshape((-1,) + x.shape[x.ndim - 1 - n_sp :]), lead

    def from_kernel(self, x: np.ndarray, lead: tuple[int, ...]) -> np.ndarray:
        x = x.reshape(lead + x.shape[1:])
        if self.channel_axis is None:
            return x[..., 0]
        return np.ascontiguousarray(np.moveaxis(x, -1, self.channel_axis))


def _reduce_kernel(x: np.ndarray, a: float, backend: str) -> np.ndarray:
    """REDUCE an ``(F, [Z,] H, W, C)`` array on all its spatial axes."""
    if x.ndim == 5:  # (F, Z, H, W, C): y and x per z-slice, then z
        f, z = x.shape[:2]
        yx = _kernels.reduce_yx(x.reshape((f * z,) + x.shape[2:]), a, backend)
        return _kernels.reduce_axis(yx.reshape((f, z) + yx.shape[1:]), 1, a)
    return _kernels.reduce_yx(x, a, backend)


def _expand_kernel(
    x: np.ndarray, size: tuple[int, ...], a: float, backend: str
) -> np.ndarray:
    """EXPAND an ``(F, [Z,] H, W, C)`` array to spatial ``size``."""
    if x.ndim == 5:  # z first, on the smaller array, then y and x per slice
        x = _kernels.expand_axis(x, 1, size[0], a)
        f, z = x.shape[:2]
        yx = _kernels.expand_yx(x.reshape((f * z,) + x.shape[2:]), size[1:], a, backend)
        return yx.reshape((f, z) + yx.shape[1:])
    return _kernels.expand_yx(x, size, a, backend)


def check_a(a: float) -> float:
    """``a`` as a float, or a ValueError when the kernel would go negative."""
    a = float(a)
    if not 0.25 <= a <= 0.5:
        raise ValueError(
            f"a={a} is outside [0.25, 0.5], where the generating kernel stays "
            "non-negative; 0.375 is the binomial 1 4 6 4 1 / 16 kernel"
        )
    return a


# -------------------------------------------------------------- public steps
def reduce(
    image,
    *,
    a: float = DEFAULT_A,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    backend: str = "auto",
) -> np.ndarray:
    """One REDUCE step: blur with the 5-tap generating kernel, keep every 2nd sample.

    Parameters
    ----------
    image : array_like
        Image whose last two axes (three with ``reduce_z``) are spatial.
    a : float
        Generating-kernel parameter; 0.375 gives the binomial 1 4 6 4 1 / 16.
    channel_axis : int, optional
        Axis holding colour channels, never reduced.
    reduce_z : bool
        Also reduce the third-last spatial axis (z of a ``(z, y, x)`` volume).
    backend : {"auto", "opencv", "numpy"}
        Kernel implementation; all give the same numbers.

    Returns
    -------
    numpy.ndarray
        Float array whose spatial sides are ``ceil(n / 2)``.
    """
    arr = as_real_array(image)
    a = check_a(a)
    layout = _Layout(arr.ndim, channel_axis, reduce_z)
    x, lead = layout.to_kernel(arr.astype(float_dtype(arr.dtype), copy=False))
    out, _ = _checked(lambda x: _reduce_kernel(x, a, backend), [x], {"image": arr})
    return layout.from_kernel(out, lead)


def expand(
    image,
    shape: Sequence[int],
    *,
    a: float = DEFAULT_A,
    backend: str = "auto",
) -> np.ndarray:
    """One EXPAND step: upsample ``image`` to ``shape`` (Burt & Adelson).

    Every axis whose size differs from ``shape`` is expanded; each target size must
    be ``2n - 1`` or ``2n`` for an input size ``n`` (the sizes REDUCE came from).
    Axes whose sizes agree are left alone, so channels need no flag.
    """
    arr = as_real_array(image)
    a = check_a(a)
    shape = tuple(int(s) for s in shape)
    if len(shape) != arr.ndim:
        raise ValueError(
            f"shape {shape} has {len(shape)} dimensions but the image has {arr.ndim}"
        )
    axes = [ax for ax in range(arr.ndim) if shape[ax] != arr.shape[ax]]
    for ax in axes:
        n = arr.shape[ax]
        if shape[ax] not in (2 * n - 1, 2 * n):
            raise ValueError(
                f"cannot EXPAND axis {ax} from {n} to {shape[ax]} samples: the target "
                f"must be {2 * n - 1} or {2 * n} (the size this level was reduced from)"
            )
    x = arr.astype(float_dtype(arr.dtype), copy=False)
    out, _ = _checked(lambda x: _expand(x, shape, a, backend), [x], {"image": arr})
    return out


def _expand(x: np.ndarray, shape: tuple[int, ...], a: float, backend: str):
    """EXPAND a float array to ``shape`` (already validated), unchecked."""
    axes = [ax for ax in range(x.ndim) if shape[ax] != x.shape[ax]]
    consecutive = axes == list(range(axes[0], axes[0] + len(axes))) if axes else False
    if consecutive and len(axes) in (2, 3):
        # (frames, *spatial, channels) view, so y and x go through the fast 2-D kernels
        first, last = axes[0], axes[-1]
        frames = math.prod(x.shape[:first])
        channels = math.prod(x.shape[last + 1 :])
        k = x.reshape((frames,) + x.shape[first : last + 1] + (channels,))
        out = _expand_kernel(k, tuple(shape[first : last + 1]), a, backend)
        return out.reshape(shape)
    out = x.copy()
    for ax in axes:
        out = _kernels.expand_axis(out, ax, shape[ax], a)
    return out


# ----------------------------------------------------------------- pyramids
_PARAMETERS_DOC = """
    image : array_like
        At least 2-D; the last two axes (three with ``reduce_z``, channel axis
        excepted) are spatial, any leading axes are frames processed one by one.
    levels : int, optional
        Number of levels, level 0 (the image) included. ``None`` reduces until the
        smallest spatial side would fall below ``min_size``.
    a : float
        Generating-kernel parameter in [0.25, 0.5]; 0.375 is the binomial kernel
        OpenCV's ``pyrDown`` uses.
    channel_axis : int, optional
        Axis of colour channels (never reduced). Negative values count from the end.
    reduce_z : bool
        Reduce z too (isotropic volumes). The default leaves z alone, which suits
        anisotropic stacks.
    min_size : int
        Smallest side kept when ``levels`` is None.
    backend : {"auto", "opencv", "numpy"}
        Kernel implementation; they agree to float round-off."""


def _shared_parameters(func):
    """Fill ``{parameters}`` in a docstring with the parameters all pyramids share."""
    func.__doc__ = func.__doc__.replace("{parameters}", _PARAMETERS_DOC)
    return func


def pyramid_plan(
    shape: Sequence[int],
    levels: int | None = None,
    *,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = DEFAULT_MIN_SIZE,
) -> tuple[tuple[int, ...], int]:
    """The axes a pyramid of an image of ``shape`` reduces, and its number of levels.

    Validates ``levels``, ``channel_axis`` and ``min_size`` exactly as the pyramid
    functions do, so a caller (a widget, the lazy engine) can report bad
    settings up front.
    """
    axes = spatial_axes(len(shape), channel_axis=channel_axis, reduce_z=reduce_z)
    return axes, _count_levels(tuple(shape), axes, levels, min_size)


@forwards_options(pyramid_plan)
def pyramid_depth(shape: Sequence[int], levels: int | None = None, **options) -> int:
    """Number of levels a pyramid of an image of ``shape`` will have, checked as
    :func:`pyramid_plan` checks it (same arguments)."""
    return pyramid_plan(shape, levels, **options)[1]


@_shared_parameters
def iter_pyramid(
    image,
    levels: int | None = None,
    *,
    kind: str = "gaussian",
    a: float = DEFAULT_A,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = DEFAULT_MIN_SIZE,
    preserve_dtype: bool = False,
    backend: str = "auto",
):
    """Yield the levels of a Gaussian or Laplacian pyramid one at a time.

    The arguments are checked at call time; the work happens as levels are
    consumed, so a caller can report progress or stop between octaves. NaN or
    infinite input is reported when level 1 is produced.
    :func:`gaussian_pyramid` and :func:`laplacian_pyramid` collect this into a list.
    ``napari_pyramids.iter_pyramid`` also takes dask and zarr arrays
    (:mod:`napari_pyramids.dispatch`).

    Parameters
    ----------{parameters}
    kind : {"gaussian", "laplacian"}
        Which pyramid.
    preserve_dtype : bool
        Gaussian only: cast levels back to the input dtype (rounded and clipped).
    """
    check_kind(kind, preserve_dtype)
    arr = as_real_array(image)
    a = check_a(a)
    layout = _Layout(arr.ndim, channel_axis, reduce_z)
    n_levels = _count_levels(arr.shape, layout.spatial, levels, min_size)
    gauss = _gaussian_levels(arr, n_levels, layout, a, backend)
    if kind == "laplacian":
        return _laplacian_levels(gauss, a, backend)
    if preserve_dtype:
        return (
            arr if k == 0 else cast_like(g, arr.dtype) for k, (g, _) in enumerate(gauss)
        )
    return (level for level, _ in gauss)


def check_kind(kind: str, preserve_dtype: bool = False) -> None:
    """Raise unless ``kind`` is a pyramid whose levels may keep the dtype as asked."""
    if kind not in ("gaussian", "laplacian"):
        raise ValueError(f"kind must be 'gaussian' or 'laplacian', got {kind!r}")
    if preserve_dtype and kind == "laplacian":
        raise ValueError(
            "Laplacian bands are signed; preserve_dtype applies to Gaussian"
        )


def _gaussian_levels(arr, n_levels, layout, a, backend, named=None):
    """Yield ``(level, huge)``: each Gaussian level, and whether OpenCV overflowed
    on its values so far (then the EXPAND steps made from them are checked too).

    Every reduced level goes through :func:`_checked`; with non-negative weights
    every input sample reaches level 1, so NaN/inf anywhere shows up there.
    ``named`` are the arrays NaN is reported in (default: ``arr`` as "image").
    """
    named = {"image": arr} if named is None else named
    work = arr.astype(float_dtype(arr.dtype), copy=False)
    if work is arr:  # hand back the caller's pixels without a copy, but read-only
        work = arr.view()
        work.flags.writeable = False
    if n_levels == 1:
        for name, x in named.items():
            check_finite(x, name)
    huge = False
    yield work, huge
    x, lead = layout.to_kernel(work)
    for _ in range(1, n_levels):
        x, rescued = _checked(lambda x: _reduce_kernel(x, a, backend), [x], named)
        huge = huge or rescued
        yield layout.from_kernel(x, lead), huge


def _laplacian_levels(gauss, a, backend):
    fine, _ = next(gauss)
    n_bands = 0
    for coarse, huge in gauss:
        if huge:  # values near the float maximum: the band itself may not fit
            named = {f"level {n_bands}": fine, f"level {n_bands + 1}": coarse}
            band, _ = _checked(
                lambda f, c: _band(f, c, a, backend), [fine, coarse], named
            )
        else:
            band = _band(fine, coarse, a, backend)
        n_bands += 1
        yield band
        fine = coarse
    yield fine if n_bands else fine.copy()  # never hand out the caller's array


def _band(fine: np.ndarray, coarse: np.ndarray, a: float, backend: str) -> np.ndarray:
    """The Laplacian band ``fine - EXPAND(coarse)``."""
    band = _expand_level(coarse, fine.shape, a, backend)
    return np.subtract(fine, band, out=band)


@_shared_parameters
def gaussian_pyramid(
    image,
    levels: int | None = None,
    *,
    a: float = DEFAULT_A,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = DEFAULT_MIN_SIZE,
    preserve_dtype: bool = False,
    backend: str = "auto",
) -> list[np.ndarray]:
    """Gaussian pyramid: the image and its repeated REDUCE steps.

    Parameters
    ----------{parameters}
    preserve_dtype : bool
        Return every level in the input dtype (rounded and clipped for integers)
        instead of floats (float32; float64 for float64 and 32/64-bit integers).

    Returns
    -------
    list of numpy.ndarray
        ``levels`` arrays, level ``k`` with spatial sides ``ceil(n / 2**k)``. Level 0
        is the image itself as a read-only view when no conversion was needed.
        ``napari_pyramids.gaussian_pyramid`` gives a dask or zarr ``image``
        lazy dask arrays instead, computed block by block
        (:mod:`napari_pyramids.lazy.pyramid`); NaN then raises when the block
        holding it is computed.

    Notes
    -----
    Unlike ``skimage.transform.pyramid_gaussian``, sampling keeps pixel ``2j`` (no
    half-pixel shift) and the range of integer images is kept (no rescaling to
    [0, 1]). See Burt & Adelson (1983).
    """
    return list(
        iter_pyramid(
            image,
            levels,
            kind="gaussian",
            a=a,
            channel_axis=channel_axis,
            reduce_z=reduce_z,
            min_size=min_size,
            preserve_dtype=preserve_dtype,
            backend=backend,
        )
    )


def cast_like(level: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``level`` in ``dtype``: integers are rounded, then clipped to the dtype's range.

    The one cast back to an integer dtype (pyramids, blends, lazy levels, the
    OME-Zarr writer). The clip must run where the bounds are exact: in float32,
    ``iinfo(uint32).max`` rounds up to 2**32, and even in float64 the 64-bit
    maxima round up to 2**63 / 2**64; a value clipped there wraps to the other
    end of the range when cast.
    """
    if not np.issubdtype(dtype, np.integer) or not np.issubdtype(
        level.dtype, np.floating
    ):  # integers (a uniform blend's copy) go to a dtype that holds them
        return level.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    rounded = np.rint(level)
    if info.bits > 16:  # float32 holds the bounds of 8- and 16-bit integers only
        rounded = rounded.astype(np.float64, copy=False)
    top = float(info.max)
    if int(top) == info.max:
        return np.clip(rounded, info.min, info.max).astype(dtype)
    # 64-bit: clip just below the rounded-up bound, then set the top exactly
    out = np.clip(rounded, info.min, np.nextafter(top, 0)).astype(dtype)
    out[rounded >= top] = info.max
    return out


@_shared_parameters
def laplacian_pyramid(
    image,
    levels: int | None = None,
    *,
    a: float = DEFAULT_A,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = DEFAULT_MIN_SIZE,
    backend: str = "auto",
) -> list[np.ndarray]:
    """Laplacian pyramid: band-pass levels plus the low-pass residual.

    Band ``k`` is ``G_k - EXPAND(G_{k+1})``; the last item is the coarsest Gaussian
    level ``G_{levels-1}``. :func:`reconstruct` inverts it exactly (to float
    round-off). Unlike ``skimage.transform.pyramid_laplacian`` (scikit-image
    issue #7921) the bands are true differences of adjacent octaves and the
    residual is kept, so the pyramid is invertible.

    Parameters
    ----------{parameters}

    Returns
    -------
    list of numpy.ndarray
        ``levels`` float arrays (float32; float64 for float64 input and for
        integers wider than 16 bits). ``napari_pyramids.laplacian_pyramid``
        gives lazy dask arrays for a dask or zarr ``image``.
    """
    return list(
        iter_pyramid(
            image,
            levels,
            kind="laplacian",
            a=a,
            channel_axis=channel_axis,
            reduce_z=reduce_z,
            min_size=min_size,
            backend=backend,
        )
    )


def _expand_level(
    level: np.ndarray,
    shape: tuple[int, ...],
    a: float,
    backend: str,
    *,
    checked: bool = False,
) -> np.ndarray:
    """EXPAND a (float, finite) pyramid level to the shape of the level above it.

    ``checked``: through :func:`_checked`, for levels whose values are huge
    enough to overflow OpenCV (the pyramid that made them needed a rescue).
    """
    if not checked:
        return _expand(level, tuple(shape), a, backend)
    shape = tuple(shape)
    out, _ = _checked(
        lambda x: _expand(x, shape, a, backend), [level], {"level": level}
    )
    return out


def reconstruct(
    laplacian: Sequence[np.ndarray], *, a: float = DEFAULT_A, backend: str = "auto"
) -> np.ndarray:
    """Collapse a Laplacian pyramid: the exact inverse of :func:`laplacian_pyramid`.

    Starting from the residual, each level is ``band_k + EXPAND(level_{k+1})``.
    Which axes were reduced is read from the level shapes, so channel axes and
    frame axes need no flags. Use the same ``a`` the pyramid was built with.
    """
    if len(laplacian) == 0:
        raise ValueError("laplacian is an empty list; expected bands and a residual")
    levels = _real_levels(laplacian, "laplacian")
    a = check_a(a)
    for k in range(len(levels) - 1):
        if levels[k].ndim != levels[k + 1].ndim:
            raise ValueError(
                f"level {k} has {levels[k].ndim} dimensions but level {k + 1} has "
                f"{levels[k + 1].ndim}"
            )
    out, _ = _checked(lambda *x: _collapse(x, a, backend), levels, _named(levels))
    return out


def _real_levels(levels, what: str) -> list[np.ndarray]:
    """Each level as a numpy array of real numbers (complex, object refused)."""
    return [as_real_array(level, f"{what}[{k}]") for k, level in enumerate(levels)]


def _named(levels: Sequence[np.ndarray], what: str = "laplacian") -> dict:
    return {f"{what}[{k}]": level for k, level in enumerate(levels)}


def _collapse(levels: Sequence[np.ndarray], a: float, backend: str) -> np.ndarray:
    """``band_k + EXPAND(level_{k+1})`` from the residual up."""
    out = levels[-1].astype(float_dtype(levels[-1].dtype), copy=True)
    for band in reversed(levels[:-1]):
        out = _expand_level(out, band.shape, a, backend)
        out += band
    return out


def equal_size_levels(
    pyramid: Sequence[np.ndarray], *, a: float = DEFAULT_A, backend: str = "auto"
) -> np.ndarray:
    """Expand every level back to the size of level 0 and stack them on a new axis 0.

    For a Gaussian pyramid this shows the same image ever blurrier; for a Laplacian
    pyramid the stack sums to the original image (each band is expanded exactly as
    :func:`reconstruct` would).
    """
    if len(pyramid) == 0:
        raise ValueError("pyramid is an empty list")
    levels = _real_levels(pyramid, "pyramid")
    a = check_a(a)

    def stack(*levels):
        full = []
        for k, x in enumerate(levels):
            x = x.astype(float_dtype(x.dtype), copy=k == 0)
            for finer in reversed(levels[:k]):
                x = _expand_level(x, finer.shape, a, backend)
            full.append(x)
        return np.stack(full)

    out, _ = _checked(stack, levels, _named(levels, "pyramid"))
    return out
