"""Blending two images under a mask: the multiresolution spline and its references.

:func:`blend` is Burt & Adelson's multiresolution spline [1]_: the Laplacian
pyramids of both images are combined level by level, weighted by the Gaussian
pyramid of the mask, and the result is collapsed. Each spatial frequency band is
joined over a transition zone as wide as its own wavelength, so coarse colour
differences fade smoothly while fine detail stays sharp and free of ghosts.

:func:`cut_blend` (a hard cut at the mask border) and :func:`feather_blend`
(alpha blending with a blurred mask, one transition width for all frequencies)
are the two simple methods the spline improves on; :func:`seam_energy` measures
how visible the join is, so the three can be compared with numbers.

Conventions shared by all functions here:

* ``image_a`` and ``image_b`` have the same shape and follow the pyramid axis
  conventions (last two axes spatial, ``channel_axis`` for colour, leading axes
  processed frame by frame, ``reduce_z`` for isotropic volumes).
* ``mask`` is one weight per pixel, shaped like the images without their channel
  axis, and shared by all channels. Weight 1 takes ``image_a``, 0 takes
  ``image_b``. Float masks must lie in [0, 1]; bool masks are used as is and
  integer masks are read as labels: any non-zero value selects ``image_a``.
* The output dtype follows the inputs (``numpy.result_type`` of the two images):
  integer results are rounded and clipped to the dtype's range, never wrapped.
  Work is done in float32 (float64 when an image is float64 or an integer
  type wider than 16 bits).
* Inputs are never modified.

References
----------
.. [1] P. J. Burt and E. H. Adelson, "A Multiresolution Spline With Application
   to Image Mosaics", ACM Trans. Graphics 2(4), 217-236, 1983.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from napari_pyramids.core._kernels import DEFAULT_A
from napari_pyramids.core.checks import (
    as_real_array,
    check_finite,
    normalize_channel_axis,
)
from napari_pyramids.core.pyramid import (
    _checked,
    _expand_level,
    _gaussian_levels,
    _Layout,
    cast_like,
    float_dtype,
    gaussian_pyramid,
    pyramid_depth,
    spatial_axes,
)
from napari_pyramids.progress import function_form

__all__ = [
    "blend",
    "cut_blend",
    "feather_blend",
    "iter_blend",
    "mask_weights",
    "seam_energy",
]

#: Default transition width (pixels) of :func:`feather_blend`.
DEFAULT_FEATHER_WIDTH = 16.0


# ------------------------------------------------------------------ checking
@dataclass(frozen=True)
class _Inputs:
    """Validated blend inputs: both images, the weights, and how to combine them."""

    a: np.ndarray
    b: np.ndarray
    weights: np.ndarray  # float, image shape without the channel axis
    channel_axis: int | None  # normalised to a non-negative axis
    out_dtype: np.dtype

    def broadcast(self, weights: np.ndarray) -> np.ndarray:
        """View ``weights`` (no channel axis) so it broadcasts against an image."""
        if self.channel_axis is None:
            return weights
        return np.expand_dims(weights, self.channel_axis)

    def finish(self, result: np.ndarray) -> np.ndarray:
        """Cast a float result to the output dtype (rounded and clipped for ints)."""
        return cast_like(result, self.out_dtype)


def _shape_mismatch(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> str:
    """Say why two image shapes differ and how to fix it."""
    shapes = f"image_a has shape {a_shape} but image_b has shape {b_shape}"
    for colour, grey, name in ((a_shape, b_shape, "a"), (b_shape, a_shape, "b")):
        if colour[:-1] == grey and colour[-1] in (3, 4):
            other = "b" if name == "a" else "a"
            return (
                f"{shapes}: image_{name} looks RGB(A) and image_{other} grey. Blend "
                "two colour images (skimage.color.gray2rgb) or two grey ones "
                "(skimage.color.rgb2gray)"
            )
    if a_shape[:-1] == b_shape[:-1] and {a_shape[-1], b_shape[-1]} == {3, 4}:
        return f"{shapes}: one is RGBA, the other RGB; drop the alpha (image[..., :3])"
    return (
        f"{shapes}; blending needs images of the same shape: resize one to the "
        "other (e.g. skimage.transform.resize(image_b, image_a.shape, "
        "preserve_range=True)) or crop both to a common region"
    )


def mask_weights(mask, shape=None, *, dtype=np.float32) -> np.ndarray:
    """Turn a mask into blend weights in [0, 1].

    Parameters
    ----------
    mask : array_like
        Bool (True selects image A), integer (labels: any non-zero value selects
        image A) or float with values in [0, 1] (the weight of image A).
    shape : tuple of int, optional
        Expected shape: the images' shape without their channel axis.
    dtype : numpy dtype
        Float dtype of the weights.

    Returns
    -------
    numpy.ndarray
        Float weights; a new array unless ``mask`` already had ``dtype``.

    Raises
    ------
    ValueError
        The mask is empty, has another shape, or holds values outside [0, 1]
        or NaN.
    TypeError
        The mask is not numeric.
    """
    m = np.asarray(mask)
    if m.size == 0:
        raise ValueError(f"mask is empty (shape {m.shape}); paint or draw a mask")
    if shape is not None and m.shape != tuple(shape):
        raise ValueError(
            f"mask has shape {m.shape} but the images need a mask of shape "
            f"{tuple(shape)} (their shape without the channel axis); resize or crop "
            "the mask to the images' grid"
        )
    if m.dtype == bool:
        return m.astype(dtype)
    if np.issubdtype(m.dtype, np.integer):
        return (m != 0).astype(dtype)
    if not np.issubdtype(m.dtype, np.floating):
        raise TypeError(f"mask must be bool, integer or float, got dtype {m.dtype}")
    lo, hi = m.min(), m.max()
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError("mask contains NaN; replace it first, e.g. np.nan_to_num")
    if lo < 0 or hi > 1:
        raise ValueError(
            f"mask values must lie in [0, 1] but range from {lo:g} to {hi:g}; "
            "rescale it, e.g. (m - m.min()) / (m.max() - m.min()), or clip it "
            "with np.clip(m, 0, 1)"
        )
    return m.astype(dtype, copy=False)


def _check_inputs(image_a, image_b, mask, channel_axis, reduce_z) -> _Inputs:
    a = as_real_array(image_a, "image_a")
    b = as_real_array(image_b, "image_b")
    if a.shape != b.shape:
        raise ValueError(_shape_mismatch(a.shape, b.shape))
    spatial_axes(a.ndim, channel_axis=channel_axis, reduce_z=reduce_z)  # validates
    out_dtype = np.result_type(a.dtype, b.dtype)
    ch = normalize_channel_axis(channel_axis, a.ndim)
    mask_shape = a.shape if ch is None else a.shape[:ch] + a.shape[ch + 1 :]
    m_shape = np.shape(mask)
    if ch is None and m_shape == a.shape[:-1] and a.shape[-1] in (3, 4):
        raise ValueError(
            f"mask has shape {m_shape} and the images {a.shape}: the images look "
            "RGB(A); pass channel_axis=-1 so the mask is shared by the channels"
        )
    if ch is not None and m_shape == a.shape:
        raise ValueError(
            f"mask has shape {m_shape}, with a channel axis; a mask holds one weight "
            f"per pixel, shared by all channels: pass a mask of shape {mask_shape}, "
            f"e.g. mask.max(axis={ch})"
        )
    weights = mask_weights(mask, mask_shape, dtype=float_dtype(out_dtype))
    return _Inputs(a, b, weights, ch, out_dtype)


def _check_finite(inputs: _Inputs) -> None:
    check_finite(inputs.a, "image_a")
    check_finite(inputs.b, "image_b")


def _uniform(inputs: _Inputs) -> np.ndarray | None:
    """The result when the mask selects one image everywhere, else None.

    That result is a copy, so the images are checked for NaN here: no other
    finite check sees them on this path.
    """
    w = inputs.weights
    if w.min() == 1 or w.max() == 0:
        _check_finite(inputs)
    if w.min() == 1:
        return inputs.finish(inputs.a.copy())
    if w.max() == 0:
        return inputs.finish(inputs.b.copy())
    return None


# ------------------------------------------------------------------ blending
_BLEND_DOC = """Blend two images under a mask with the multiresolution spline.

Each Laplacian band of the output is ``GM_k * LA_k + (1 - GM_k) * LB_k``,
where ``LA``, ``LB`` are the Laplacian pyramids of the images and ``GM`` the
Gaussian pyramid of the mask; the output is that pyramid collapsed
(Burt & Adelson 1983, "A Multiresolution Spline With Application to Image
Mosaics").

Parameters
----------
image_a, image_b : array_like
    Images of the same shape: grey ``(y, x)``, colour with ``channel_axis``,
    or volumes / stacks ``(..., y, x)``.
mask : array_like
    Weight of ``image_a`` per pixel, shaped like the images without their
    channel axis: float in [0, 1], bool, or integer (non-zero selects A).
levels : int, optional
    Pyramid levels, level 0 included; ``None`` reduces until the smallest
    side would drop below 8 pixels. More levels give wider transitions to
    the low frequencies; ``levels=1`` is plain alpha blending with the mask.
channel_axis : int, optional
    Colour axis (e.g. ``-1`` for RGB/RGBA); channels share the mask.
reduce_z : bool
    Also reduce z (isotropic volumes); by default z-slices are blended one
    by one, which suits anisotropic stacks.
a : float
    Generating-kernel parameter of REDUCE/EXPAND (0.375: binomial kernel).
backend : {"auto", "opencv", "numpy"}
    Pyramid kernel implementation.
progress : callable(done, total), optional
    Called after each level is reduced or collapsed (``2 * levels`` steps).
cancel : callable() -> bool, optional
    Checked between levels; True stops the blend and raises
    :class:`napari_pyramids.progress.Cancelled`.

Returns
-------
numpy.ndarray
    The blend, with the images' shape and dtype (``numpy.result_type`` of
    the two; integers are rounded and clipped). A mask that is all ones
    (all zeros) returns a copy of ``image_a`` (``image_b``) exactly.

Raises
------
ValueError
    Shapes that differ (between the images, or of the mask), a mask outside
    [0, 1], NaN/inf in the images, or too many levels for the image size.

Notes
-----
The combination is linear, so it is computed as
``B + collapse(GM_k * L(A - B)_k)``: one Laplacian pyramid (of ``A - B``)
instead of two, built top-down while collapsing, with the same result as
the textbook order to float round-off.
"""


def iter_blend(
    image_a,
    image_b,
    mask,
    levels: int | None = None,
    *,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    a: float = DEFAULT_A,
    backend: str = "auto",
) -> Generator[tuple[int, int], None, np.ndarray]:
    """:func:`blend`, one pyramid level at a time, for progress and cancelling.

    Arguments are those of :func:`blend` and are checked at call time (bad input
    raises here, before any work). The returned generator yields
    ``(done, total)`` after each level is reduced or collapsed and returns the
    blend (``StopIteration.value``; ``result = yield from iter_blend(...)``).
    Stopping early wastes nothing but the work done so far.
    """
    inputs = _check_inputs(image_a, image_b, mask, channel_axis, reduce_z)
    n_levels = pyramid_depth(
        inputs.a.shape, levels, channel_axis=inputs.channel_axis, reduce_z=reduce_z
    )
    return _blend_levels(inputs, n_levels, reduce_z, a, backend)


def _blend_levels(inputs: _Inputs, n_levels: int, reduce_z, a, backend):
    total = 2 * n_levels
    uniform = _uniform(inputs)
    if uniform is not None:
        yield total, total
        return uniform
    with np.errstate(over="ignore"):  # beyond the float range: _checked says so
        diff = np.subtract(inputs.a, inputs.b, dtype=inputs.weights.dtype)
    layout = _Layout(diff.ndim, inputs.channel_axis, reduce_z)
    named = {"image_a": inputs.a, "image_b": inputs.b}  # where NaN is reported
    gd = []
    for level, rescued in _gaussian_levels(diff, n_levels, layout, a, backend, named):
        gd.append(level)
        huge = rescued  # OpenCV overflowed on these values: check the EXPANDs too
        if len(gd) > 1:
            yield len(gd) - 1, total
    gm = gaussian_pyramid(
        inputs.weights, n_levels, a=a, reduce_z=reduce_z, backend=backend
    )
    yield n_levels, total
    # Collapse from the coarsest level: out_k = EXPAND(out_{k+1}) + GM_k * LD_k,
    # with the Laplacian band LD_k = GD_k - EXPAND(GD_{k+1}) made on the way.
    out = gd[-1] * inputs.broadcast(gm[-1])
    for k in range(n_levels - 2, -1, -1):
        shape = gd[k].shape
        band = _expand_level(gd[k + 1], shape, a, backend, checked=huge)
        np.subtract(gd[k], band, out=band)
        band *= inputs.broadcast(gm[k])
        out = _expand_level(out, shape, a, backend, checked=huge)
        out += band
        yield total - 1 - k, total
    out += inputs.b
    yield total, total
    return inputs.finish(out)


blend = function_form(iter_blend, name="blend", doc=_BLEND_DOC, returns="np.ndarray")


def feather_blend(
    image_a,
    image_b,
    mask,
    *,
    width: float = DEFAULT_FEATHER_WIDTH,
    channel_axis: int | None = None,
    reduce_z: bool = False,
) -> np.ndarray:
    """Alpha-blend two images with a feathered (blurred) mask.

    The mask is blurred by a Gaussian with ``sigma = width / 4`` over the spatial
    axes, so the weight rises from about 2 % to 98 % over ``width`` pixels across
    the mask border; the output is ``alpha * A + (1 - alpha) * B``. One width
    serves all frequencies: narrow widths show the seam, wide ones ghost fine
    detail. :func:`blend` avoids both.

    Parameters
    ----------
    image_a, image_b, mask, channel_axis, reduce_z
        As in :func:`blend`.
    width : float
        Transition width in pixels (finite, >= 0); 0 uses the mask as it is.
        Widths beyond 8 times the longest spatial side are computed as that
        (the weights are then nearly the mask's mean everywhere).

    Returns
    -------
    numpy.ndarray
        The blend, with the images' shape and dtype.
    """
    width = _check_width(width)
    inputs = _check_inputs(image_a, image_b, mask, channel_axis, reduce_z)
    uniform = _uniform(inputs)
    if uniform is not None:
        return uniform
    alpha = inputs.weights
    if width > 0:
        from scipy import ndimage  # here, so `import napari_pyramids` stays light

        axes = spatial_axes(alpha.ndim, reduce_z=reduce_z)
        sigma = min(width, _widest_useful_width(alpha.shape, axes)) / 4
        alpha = ndimage.gaussian_filter(alpha, sigma, mode="mirror", axes=axes)
    alpha = inputs.broadcast(alpha)

    def mix(a, b):  # B + alpha (A - B): exactly B where alpha is 0
        # A - B beyond the float range (inf, and inf * 0 = NaN): _checked rescues it
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.subtract(a, b, dtype=alpha.dtype)
            out *= alpha
        out += b
        return out

    named = {"image_a": inputs.a, "image_b": inputs.b}
    out, _ = _checked(mix, [inputs.a, inputs.b], named)
    return inputs.finish(out)


def _check_width(width) -> float:
    """The feather width as a float: a finite number of pixels, 0 or more."""
    try:
        width = float(width)
    except (TypeError, ValueError):
        raise TypeError(f"width must be a number of pixels, got {width!r}") from None
    if not 0 <= width < math.inf:  # also rejects NaN
        raise ValueError(
            f"width must be a finite number of pixels, 0 or more, got {width}; "
            "widths beyond 8 times the image's longest side are computed as that"
        )
    return width


def _widest_useful_width(shape: tuple[int, ...], axes: tuple[int, ...]) -> float:
    """The feather width beyond which :func:`feather_blend` computes this one.

    At width 8 n (sigma 2 n, n the longest side) the feathered weights are
    already within a few 1e-3 of the mask's mean everywhere: wider only creeps
    closer, while the blur kernel (and time and memory) grows with the width;
    width 1e9 used to ask for 15 GiB.
    """
    return 8.0 * max(shape[ax] for ax in axes)


def cut_blend(image_a, image_b, mask, *, channel_axis: int | None = None) -> np.ndarray:
    """Hard cut: ``image_a`` where the mask weight is at least 0.5, else ``image_b``.

    The reference every blend is judged against: any difference between the
    images shows as a step at the mask border.

    Parameters
    ----------
    image_a, image_b, mask, channel_axis
        As in :func:`blend`.

    Returns
    -------
    numpy.ndarray
        The composite, with the images' shape and dtype.
    """
    inputs = _check_inputs(image_a, image_b, mask, channel_axis, False)
    _check_finite(inputs)
    take_a = inputs.broadcast(inputs.weights >= 0.5)
    return np.where(take_a, inputs.a, inputs.b).astype(inputs.out_dtype, copy=False)


# ---------------------------------------------------------------- measuring
def seam_energy(
    image, mask, *, channel_axis: int | None = None, width: int = 1
) -> float:
    """Mean gradient magnitude of ``image`` along the border of ``mask``.

    A visible seam is a jump across the border, so the lower this number, the
    less visible the join. Use it to compare methods on the same images and mask.

    Parameters
    ----------
    image : array_like
        A blended image (same axis conventions as :func:`blend`).
    mask : array_like
        The mask the image was blended with (thresholded at 0.5 to find the
        border).
    channel_axis : int, optional
        Colour axis; gradient magnitudes are summed over channels.
    width : int
        Half-width in pixels of the band around the border that is measured.

    Returns
    -------
    float
        Mean over the band of ``sqrt(dy**2 + dx**2)`` (central differences),
        in image units per pixel.
    """
    from scipy import ndimage

    img = as_real_array(image)
    sp = spatial_axes(img.ndim, channel_axis=channel_axis)
    ch = normalize_channel_axis(channel_axis, img.ndim)
    mask_shape = img.shape if ch is None else img.shape[:ch] + img.shape[ch + 1 :]
    inside = mask_weights(mask, mask_shape) >= 0.5
    if int(width) < 1:
        raise ValueError(f"width must be at least 1 pixel, got {width}")
    # 3x3 structuring element on (y, x) only: frames are measured one by one.
    structure = np.ones((1,) * (inside.ndim - 2) + (3, 3), dtype=bool)
    grown = ndimage.binary_dilation(inside, structure, iterations=int(width))
    shrunk = ndimage.binary_erosion(
        inside, structure, iterations=int(width), border_value=1
    )
    band = grown & ~shrunk
    if not band.any():
        raise ValueError("mask has no border: it selects one image everywhere")
    x = img.astype(float_dtype(img.dtype), copy=False)
    dy, dx = np.gradient(x, axis=sp)
    magnitude = np.sqrt(dy * dy + dx * dx)
    if ch is not None:
        magnitude = magnitude.sum(axis=ch)
    return float(magnitude[band].mean())
