"""The inputs of a template search, checked and made safe to score.

:class:`_Layout` views the user's arrays as ``(z, y, x, channels)`` and says
what is wrong with a pair that cannot be searched; :func:`prepared` checks an
image and template and brings magnitudes that float32 sums could not hold into
range by a power of two (ZNCC does not change, no rounding does either).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from napari_pyramids.core.checks import (
    as_real_array,
    check_finite,
    normalize_channel_axis,
)


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


def _scale_invariant(x: np.ndarray, name: str, nan_check: bool = True) -> np.ndarray:
    """``x`` times the power of two that brings its largest magnitude into [1, 2),
    when that magnitude is out of :data:`_SAFE_PEAK`; else ``x`` itself. Raises
    for infinite values and, unless ``nan_check`` is False, for NaN.

    ZNCC does not change when an input is multiplied by a positive number, and
    a power of two changes no rounding, so scores are those of the unscaled
    data where float32 could hold its sums. 8- and 16-bit images never need it.
    ``nan_check=False`` is for an image whose Gaussian pyramid is checked
    instead (:func:`image_levels`): OpenCV's one-pass magnitude skips NaN.
    """
    if x.dtype.itemsize <= 2 and np.issubdtype(x.dtype, np.integer):
        return x
    peak = _largest_magnitude(x)
    if not math.isfinite(peak) or nan_check:
        check_finite(x, name)
    if _is_safe(peak):
        return x
    floats = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    return np.ldexp(floats, -math.floor(math.log2(peak)))


def _is_safe(peak: float) -> bool:
    """True where data whose largest magnitude is ``peak`` needs no scaling."""
    return peak == 0 or _SAFE_PEAK[0] <= peak < _SAFE_PEAK[1]


def _largest_magnitude(x: np.ndarray) -> float:
    """Largest ``|x|``: one OpenCV pass (its infinity norm) for contiguous
    float32 and float64 arrays of fewer than 2**31 values (NaN skipped, 0 where
    all are NaN), numpy's extremes otherwise (NaN propagated; no wrap-around of
    the most negative integer)."""
    floats = x.dtype in (np.float32, np.float64)
    if floats and x.flags.c_contiguous and 0 < x.size < 2**31:
        flat = x.reshape(-1, x.shape[-1] if x.ndim else 1)
        return float(cv2.norm(flat, cv2.NORM_INF))
    return max(abs(float(x.min())), abs(float(x.max())))


def prepared(image, template, channel_axis, image_checks: bool = True):
    """Image and template checked and ready to score, and their :class:`_Layout`.

    Both must be real arrays of one layout, the template finite; each comes
    back as :func:`_scale_invariant` makes it (NaN and inf refused, magnitudes
    beyond float32's safe range scaled by a power of two). ``image_checks=False``
    leaves the image as it is, for a search that checks it on the way: its NaN
    and inf show in a pyramid's coarsest level, and :func:`safe_image` scales
    it where it is scored whole.
    """
    image = as_real_array(image, "image")
    template = as_real_array(template, "template")
    layout = _Layout(image, template, channel_axis)
    check_finite(template, "template")
    if image_checks:
        image = _scale_invariant(image, "image")
    return image, _scale_invariant(template, "template"), layout


def safe_image(image: np.ndarray) -> np.ndarray:
    """``image`` scaled into float32's safe range where it is not (see
    :func:`_scale_invariant`; inf refused), for a search whose pyramid finds
    its NaN (:func:`image_levels`): one pass over the image."""
    return _scale_invariant(image, "image", nan_check=False)


def in_safe_range(x: np.ndarray) -> bool:
    """True where ``x``'s largest magnitude needs no scaling (see
    :func:`_scale_invariant`): scores of ``x`` are those of the data."""
    return _is_safe(_largest_magnitude(x))


def _check_whole(name: str, value, least: int) -> None:
    """Raise unless ``value`` is a whole number (not a bool) of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")
