"""The Blend action: two images and a mask in, a seamless blend out."""

from __future__ import annotations

from dataclasses import dataclass

from napari_pyramids.actions.base import Job, Result, Settings, Step, setting
from napari_pyramids.core.blend import (
    DEFAULT_FEATHER_WIDTH,
    cut_blend,
    feather_blend,
    iter_blend,
)
from napari_pyramids.core.pyramid import (
    DEFAULT_MIN_SIZE,
    gaussian_pyramid,
    pyramid_depth,
    spatial_axes,
)
from napari_pyramids.layers import Source, layer_name, octave_layer, result_layer
from napari_pyramids.progress import map_steps

METHODS = {
    "pyramid": "Laplacian pyramid (seamless)",
    "feather": "feather (alpha with a blurred mask)",
    "cut": "hard cut",
}


@dataclass(frozen=True)
class BlendSettings(Settings):
    """How to blend."""

    method: str = setting(
        "pyramid",
        "Laplacian pyramid: each frequency band joined over its own width "
        "(Burt & Adelson), no seam and no ghosts; feather: one blurred mask "
        "for all; hard cut: the mask as it is",
        choices=METHODS,
        label="method",
    )
    levels: int | None = setting(
        None,
        "pyramid levels, level 0 included: more levels join the coarse colours "
        f"more smoothly; by default all down to {DEFAULT_MIN_SIZE} pixels",
        label="levels",
        limits=(1, 20),
    )
    width: float = setting(
        DEFAULT_FEATHER_WIDTH,
        "feather: how many pixels the weight takes to go from one image to the "
        "other across the mask border",
        label="feather width (px)",
        limits=(0, 1000),
    )
    show_mask_octaves: bool = setting(
        False,
        "also add the mask's Gaussian pyramid: the weight of each band",
        label="show mask octaves",
    )


def blend_name(method: str, a: Source, b: Source) -> str:
    """Stable output name, so a re-run with the same method updates its layer."""
    return f"{method} blend({a.name}, {b.name})"


def run(a: Source, b: Source, mask: Source, settings: BlendSettings) -> Job:
    """Check everything up front; return the job that blends and builds layers.

    ``mask`` holds the weight of ``a`` per pixel on ``a``'s grid
    (:func:`napari_pyramids.layers.mask_source_from_layer` makes one).
    """
    levels = settings.levels if settings.method == "pyramid" else None
    # iter_blend checks shapes, dtypes, the mask and levels when called, so bad
    # input is reported now, on the caller's thread, whichever method runs.
    steps = iter_blend(a.data, b.data, mask.data, levels, channel_axis=a.channel_axis)
    n_levels = pyramid_depth(a.data.shape, levels, channel_axis=a.channel_axis)
    if settings.method == "pyramid":
        blended = map_steps(
            steps, lambda p: Step(p[0], p[1], f"pyramid step {p[0]} of {p[1]}")
        )
    else:
        steps.close()
        blended = _one_step(a, b, mask, settings)
    return Job(
        description=f"{METHODS[settings.method]} of {a.name} and {b.name}",
        steps=_blend_steps(blended, a, b, mask, settings, n_levels),
    )


def _one_step(a: Source, b: Source, mask: Source, settings: BlendSettings):
    """A feathered or cut blend: one step."""
    yield Step(0, 1, f"{settings.method} blending")
    if settings.method == "feather":
        return feather_blend(
            a.data, b.data, mask.data, width=settings.width, channel_axis=a.channel_axis
        )
    return cut_blend(a.data, b.data, mask.data, channel_axis=a.channel_axis)


def _blend_steps(blended, a: Source, b: Source, mask: Source, settings, n_levels):
    result = yield from blended
    layers = [result_layer(result, a, name=blend_name(settings.method, a, b))]
    if settings.show_mask_octaves:
        axes = spatial_axes(mask.data.ndim)
        octaves = gaussian_pyramid(mask.data, n_levels)
        layers += [
            octave_layer(
                level, mask, k, axes, name=layer_name(mask.name, f"gaussian octave {k}")
            )
            for k, level in enumerate(octaves)
        ]
    return Result(layers)
