"""The Pyramid action: an image in, its Gaussian or Laplacian octaves as layers."""

from __future__ import annotations

from dataclasses import dataclass

from napari_pyramids.actions.base import Job, Result, Settings, Step, setting
from napari_pyramids.core.pyramid import (
    DEFAULT_MIN_SIZE,
    equal_size_levels,
    pyramid_depth,
    spatial_axes,
)
from napari_pyramids.dispatch import iter_pyramid
from napari_pyramids.layers import (
    Source,
    layer_name,
    multiscale_layer,
    octave_layer,
    stack_layer,
)

KINDS = {
    "gaussian": "Gaussian (blurred octaves)",
    "laplacian": "Laplacian (band-pass)",
}
OUTPUTS = {
    "octaves": "octaves as aligned layers",
    "multiscale": "one multiscale layer",
    "stack": "equal-size stack (slider)",
}
#: What an output's layers look like in napari, where that needs saying.
OUTPUT_NOTES = {
    "multiscale": (
        "napari draws multiscale levels as if area-averaged (napari #6320): coarse\n"
        "levels may look shifted by up to half a coarse pixel. Octave layers are exact."
    ),
    "octaves": (
        "Coarse octaves overhang the top-left edge by half a coarse "
        "pixel: each is centred on the pixel REDUCE kept (README)."
    ),
}


@dataclass(frozen=True)
class PyramidSettings(Settings):
    """What to compute and how to show it."""

    kind: str = setting(
        "gaussian",
        "Gaussian: the image ever more blurred, halved at each octave; "
        "Laplacian: the detail each octave adds (band-pass), plus the residual",
        choices=KINDS,
        label="pyramid",
    )
    levels: int | None = setting(
        None,
        "number of octaves, the image (octave 0) included; by default all "
        f"until the smallest side would drop below {DEFAULT_MIN_SIZE} pixels",
        label="levels",
        limits=(1, 20),
    )
    output: str = setting(
        "octaves",
        "separate layers that overlay the image exactly, one multiscale layer "
        "(napari draws it up to half a coarse pixel off), or an equal-size "
        "stack with a slider",
        choices=OUTPUTS,
        label="show as",
    )
    reduce_z: bool = setting(
        False,
        "halve z too, for volumes with cubic voxels (else z is kept)",
        label="reduce z too (isotropic volume)",
    )
    min_size: int = setting(
        DEFAULT_MIN_SIZE,
        "with automatic levels: the smallest side an octave may have, in pixels",
    )
    keep_dtype: bool = setting(
        True,
        "Gaussian octaves of an integer image (uint8, uint16) keep its dtype",
        label="Gaussian octaves keep the image dtype",
    )


def run(source: Source, settings: PyramidSettings) -> Job:
    """Check ``settings`` for ``source``; return the job that builds the layers."""
    if source.is_lazy and settings.output != "multiscale":
        raise ValueError(
            f"{source.name!r} is dask/zarr backed (out of core): show its pyramid as "
            f"{OUTPUTS['multiscale']!r}, computed chunk by chunk as you view it; "
            f"{OUTPUTS[settings.output]!r} would load it whole"
        )
    n_levels = octaves_made(source, settings)
    if n_levels < 2:
        raise ValueError(_one_level_message(source, settings))
    return Job(
        description=f"{settings.kind.capitalize()} pyramid of {source.name}",
        steps=_pyramid_steps(source, settings, n_levels),
    )


def octaves_made(source: Source, settings: PyramidSettings) -> int:
    """How many octaves (the image included) the pyramid of ``source`` has."""
    return pyramid_depth(
        source.data.shape,
        settings.levels,
        channel_axis=source.channel_axis,
        reduce_z=settings.reduce_z,
        min_size=settings.min_size,
    )


def _one_level_message(source: Source, settings: PyramidSettings) -> str:
    """Why a one-level pyramid is refused: it would only add a copy of the image."""
    if settings.levels is not None:
        return (
            "levels=1 is the image itself (octave 0), so there is nothing to add; "
            "ask for 2 or more levels"
        )
    return (
        f"{source.name!r} (shape {tuple(source.data.shape)}) is smaller than twice "
        f"min_size={settings.min_size}, so its pyramid is the image alone; lower "
        "min_size or pass levels=2 or more"
    )


def level_name(source: Source, kind: str, k: int, n_levels: int) -> str:
    """Layer name for octave ``k``: says source, kind and octave."""
    if kind == "laplacian" and k == n_levels - 1:
        return layer_name(source.name, f"residual octave {k}")
    return layer_name(source.name, f"{kind} octave {k}")


def _pyramid_steps(source: Source, settings: PyramidSettings, n_levels: int):
    """Compute the pyramid octave by octave, yielding progress; return the layers."""
    band = settings.kind == "laplacian"
    total = n_levels + (1 if settings.output == "stack" else 0)
    levels = []
    octaves = iter_pyramid(
        source.data,
        n_levels,
        kind=settings.kind,
        channel_axis=source.channel_axis,
        reduce_z=settings.reduce_z,
        preserve_dtype=settings.keep_dtype and not band,
    )
    for k, level in enumerate(octaves):
        levels.append(level)
        yield Step(k + 1, total, f"octave {k} of {n_levels - 1}: {level.shape}")
    if settings.output == "multiscale":
        name = layer_name(source.name, f"{settings.kind} pyramid")
        layer = multiscale_layer(levels, source, name=name, band=band)
        return Result([layer])
    if settings.output == "stack":
        stack = equal_size_levels(levels)
        yield Step(total, total, "stacked")
        name = layer_name(source.name, f"{settings.kind} stack")
        layer = stack_layer(stack, source, name=name, band=band)
        return Result([layer])
    axes = spatial_axes(
        len(source.data.shape),
        channel_axis=source.channel_axis,
        reduce_z=settings.reduce_z,
    )
    # Gaussian octave 0 is the source itself: adding it again would only clutter.
    first = 1 if not band else 0
    return Result(
        [
            octave_layer(
                levels[k],
                source,
                k,
                axes,
                name=level_name(source, settings.kind, k, n_levels),
                band=band and k < n_levels - 1,
            )
            for k in range(first, n_levels)
        ]
    )
