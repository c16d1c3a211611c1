"""Input checks shared by the pyramid, blending, search and segmentation engines.

One wording for one problem, wherever it is found: a dtype that is not real
numbers, an empty array, NaN or infinite values, a ``channel_axis`` outside the
array; and the one answer to "is this array out of core?" (:func:`is_lazy`).
"""

from __future__ import annotations

import math

import numpy as np


def is_lazy(image) -> bool:
    """True for dask and zarr arrays: out-of-core data, never loaded whole.

    Decided from the type's module, so that dask and zarr are never imported
    here. The pyramid functions send such arrays to :mod:`napari_pyramids.lazy`
    and the widgets show their pyramids lazily.
    """
    return type(image).__module__.split(".")[0] in ("dask", "zarr")


def check_real(arr, name: str = "image") -> None:
    """Raise unless ``arr`` (numpy, dask or zarr) holds real numbers, not empty."""
    if not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(
            f"{name} must hold real numbers (integers or floats), got dtype {arr.dtype}"
        )
    if math.prod(arr.shape) == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); nothing to compute")


def check_finite(arr: np.ndarray, name: str = "image") -> None:
    """Raise if a numpy array of floats holds NaN or infinite values (counted)."""
    if not np.issubdtype(arr.dtype, np.floating) or np.isfinite(arr).all():
        return
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    raise ValueError(
        f"{name} contains {bad} NaN or infinite value(s); replace them first, "
        f"e.g. np.nan_to_num({name}) or fill them from neighbours"
    )


def as_real_array(image, name: str = "image") -> np.ndarray:
    """``image`` as a numpy array of real numbers (bool becomes float32).

    A masked array with masked pixels is refused: numpy would drop the mask
    silently and the hidden values would enter the result.
    """
    check_not_masked(image, name)
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    check_real(arr, name)
    return arr


def check_not_masked(image, name: str = "image") -> None:
    """Raise if ``image`` is a numpy masked array with pixels masked."""
    masked = np.ma.getmask(image) if isinstance(image, np.ma.MaskedArray) else False
    if np.any(masked):
        raise ValueError(
            f"{name} is a masked array with {int(np.count_nonzero(masked))} masked "
            f"pixel(s), and a pyramid has no notion of a mask; fill them first, e.g. "
            f"{name}.filled({name}.mean()), or blend with the mask instead"
        )


def normalize_channel_axis(channel_axis: int | None, ndim: int) -> int | None:
    """``channel_axis`` as a non-negative axis of an ``ndim``-D array, or None.

    The one check of ``channel_axis`` every public function goes through: a
    bool (``True`` would pass for axis 1), a float or a string is refused.
    """
    if channel_axis is None:
        return None
    if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(
        channel_axis, (int, np.integer)
    ):
        raise TypeError(
            "channel_axis must be a whole number (the index of the colour axis, "
            f"e.g. -1 for RGB) or None, got {channel_axis!r}"
        )
    channel_axis = int(channel_axis)
    if not -ndim <= channel_axis < ndim:
        raise ValueError(
            f"channel_axis={channel_axis} is out of range for an array with {ndim} "
            f"dimensions (valid: {-ndim} to {ndim - 1}, or None)"
        )
    return channel_axis % ndim
