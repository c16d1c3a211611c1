"""Nucleus size: the typical diameter of an image's nuclei, estimated or
checked, and the working scale that brings them to the trained size.

The network was trained on nuclei of one size band (``TRAINED_DIAMETER``);
:func:`estimate_diameter` reads an image's size by a coarse-to-fine look over
its octaves, :func:`working_scale` gives the resampling factor for it, and
:func:`_min_sizes` the instance-extraction sizes at that scale.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import defaults
from .data import nucleus_diameter
from .defaults import (
    CORE_THRESHOLD,
    ESTIMATE_WINDOW,
    SIZE_AGREEMENT,
)
from .instances import instances_from_masks
from .model import CompactDeepLab
from .normalize import normalize, percentile_range
from .rescale import TRAINED_DIAMETER, Resampling
from .runtime import ModelLike, _as_model, _check_image, _inference_copy, resolve_device
from .synthetic import BACKGROUND, CORE

__all__ = ["estimate_diameter", "working_scale"]


def _check_diameter(diameter: float, shape: tuple[int, int]) -> float:
    """``diameter`` as a positive float no larger than the image ``shape``,
    or an error that says what to give."""
    try:
        value = float(diameter)
    except (TypeError, ValueError):
        raise TypeError(
            f"diameter must be a number of pixels or None, got {diameter!r}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"diameter must be a positive number of pixels (or None to estimate "
            f"it), got {diameter}"
        )
    if value > max(shape):
        raise ValueError(
            f"diameter {value:g} px is larger than the image {tuple(shape)}; give "
            "the typical nucleus diameter in pixels of this image"
        )
    return value


def working_scale(diameter: float) -> float:
    """The resampling factor for nuclei of ``diameter`` px (1 within tolerance).

    Nuclei within :data:`RESCALE_TOLERANCE` of the trained diameter are inside
    the range the network was trained on (scale augmentation), so the image
    is used as it is.
    """
    scale = TRAINED_DIAMETER / diameter
    return (
        1.0 if abs(math.log(scale)) <= math.log(defaults.RESCALE_TOLERANCE) else scale
    )


def _min_sizes(scale: float, min_size: int | None) -> dict[str, int]:
    """Instance-extraction sizes on the image grid for a working ``scale``.

    The limits hold at the trained nucleus size; an image pixel is ``scale``
    trained-size pixels across. ``min_size`` (image pixels) overrides the
    scaled default.
    """
    per_trained = 1.0 / scale  # image pixels per trained-size pixel
    smallest = defaults.MIN_SIZE * per_trained**2 if min_size is None else min_size
    return {
        "grow": math.ceil(defaults.GROW * per_trained),
        "min_size": max(1, round(smallest)),
        "min_seed": max(1, round(defaults.MIN_SEED * per_trained**2)),
    }


def _pick_window(image: np.ndarray, side: int) -> np.ndarray:
    """The ``side``-square window of ``image`` with the most contrast (or all)."""
    height, width = image.shape
    if height <= side and width <= side:
        return image
    ch, cw = min(side, height), min(side, width)
    step_y, step_x = max(1, ch // 2), max(1, cw // 2)
    best, best_spread = (0, 0), -1.0
    stride = max(1, side // 64)  # a coarse look is enough to rank windows
    for y in range(0, height - ch + 1, step_y):
        for x in range(0, width - cw + 1, step_x):
            spread = float(image[y : y + ch : stride, x : x + cw : stride].std())
            if spread > best_spread:
                best, best_spread = (y, x), spread
    y, x = best
    return image[y : y + ch, x : x + cw]


def _measure(
    net: CompactDeepLab,
    dev: torch.device,
    window: np.ndarray,
    scale: float,
    value_range: tuple[float, float],
    threshold: float,
) -> tuple[float, int]:
    """Median nucleus diameter (working px) and count of ``window`` at ``scale``."""
    resampling = Resampling.for_scale(window.shape, scale)
    work = resampling.to_work(window)
    batch = torch.from_numpy(normalize(work, value_range))[None, None].to(dev)
    with torch.inference_mode():
        probs = torch.softmax(net(batch)[0], dim=0).float().cpu().numpy()
    labels = instances_from_masks(
        probs[CORE] > threshold,
        probs[BACKGROUND] < defaults.FOREGROUND_BELOW,
        grow=defaults.GROW,
        min_size=defaults.MIN_SIZE,
        min_seed=defaults.MIN_SEED,
    )
    return nucleus_diameter(labels), int(labels.max())


def _diameter_with(
    net: CompactDeepLab, dev: torch.device, image: np.ndarray, threshold: float
) -> float:
    """Typical nucleus diameter of ``image`` by a coarse-to-fine look.

    The network looks at one window of ``ESTIMATE_WINDOW`` px (at each scale)
    at octaves 4, 3, 2, 1 and 0 of the image and at 2x. Nuclei much larger
    than the trained size come out in pieces at fine scales, and ones much
    smaller are missed or merged at coarse ones, so the size is read at the
    coarsest scale whose detections have a size the network was trained on,
    then measured once more at the scale that size calls for.

    Real nuclei measure the same in image pixels at neighbouring scales,
    while what a wrong scale makes of them does not: pieces of a large
    nucleus stay near the trained size as the scale changes, and a crowd of
    small nuclei (an embryo, a colony) seen as one blob breaks up one octave
    finer. So the coarsest trained-size scale whose size a neighbouring
    scale confirms (within :data:`SIZE_AGREEMENT`) wins; where none is
    confirmed, the coarsest trained-size scale does.
    """
    value_range = percentile_range(image)
    low, high = TRAINED_DIAMETER / 1.6, TRAINED_DIAMETER * 1.6
    found: list[tuple[float, float, int]] = []
    for scale in (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0):
        if min(image.shape) * scale < 32 and scale < 1:
            continue  # the octave is too small to hold several nuclei
        window = _pick_window(image, math.ceil(ESTIMATE_WINDOW / scale))
        diameter, count = _measure(net, dev, window, scale, value_range, threshold)
        if count:
            found.append((scale, diameter, count))
    if not found:
        return TRAINED_DIAMETER
    sizes = [diameter / scale for scale, diameter, _ in found]  # image pixels

    def confirmed(i: int) -> bool:
        return any(
            0 <= j < len(found)
            and abs(math.log(sizes[j] / sizes[i])) <= math.log(SIZE_AGREEMENT)
            for j in (i - 1, i + 1)
        )

    in_range = [i for i, f in enumerate(found) if low <= f[1] <= high and f[2] >= 3]
    if in_range:
        best = next((i for i in in_range if confirmed(i)), in_range[0])
        scale, diameter, _ = found[best]  # the coarsest confirmed, else the coarsest
    else:
        scale, diameter, _ = min(
            found, key=lambda f: abs(math.log(f[1] / TRAINED_DIAMETER))
        )
    estimate = diameter / scale
    refine = TRAINED_DIAMETER / estimate
    if abs(math.log(refine / scale)) > math.log(1.1):
        window = _pick_window(image, math.ceil(ESTIMATE_WINDOW / refine))
        diameter, count = _measure(net, dev, window, refine, value_range, threshold)
        if count >= 3 and low <= diameter <= high:
            estimate = diameter / refine
    return float(min(max(estimate, 2.0), max(image.shape)))


def estimate_diameter(
    image: np.ndarray,
    model: ModelLike = "nuclei",
    *,
    device: str | torch.device = "auto",
    channel_axis: int | None = None,
    threshold: float = CORE_THRESHOLD,
) -> float:
    """Estimate the typical nucleus diameter (pixels) of a 2-D image.

    The network runs on one window of about ``ESTIMATE_WINDOW`` pixels at a
    few octaves of the image's Gaussian pyramid (and at 2x for tiny nuclei),
    so the cost does not grow with the image; the diameter is read at the
    coarsest octave where the detected nuclei have a size the network was
    trained on, and measured again at the scale it calls for. The diameter is
    the median of ``2 sqrt(area / pi)`` over the detected nuclei, as
    :func:`.data.nucleus_diameter` measures annotations.
    """
    net0 = _as_model(model)
    image = _check_image(image, net0.in_channels, channel_axis)
    dev = resolve_device(device)
    return _diameter_with(_inference_copy(net0, dev), dev, image, threshold)
