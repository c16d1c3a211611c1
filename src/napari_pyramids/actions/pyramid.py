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


@dataclass(frozen=True)
class PyramidSettings(Settings):
    """What to compute and how to show it."""

    kind: str = setting(
        "gaussian",
        "Gaussian: the image ever more blurred, halved at each octave; "
        "Laplacian: the detail each octave adds (band-pass), plus the residual",
        choices=KINDS,
    )
    levels: int | None = setting(
        None,
        "number of octaves, the image (octave 0) included; by default all "
        f"until the smallest side would drop below {DEFAULT_MIN_SIZE} pixels",
    )
    output: str = setting(
        "octaves",
        "separate layers that overlay the image exactly, one multiscale layer "
        "(napari draws it up to half a coarse pixel off), or an equal-size "
        "stack with a slider",
        choices=OUTPUTS,
    )
    reduce_z: bool = setting(
        False, "halve z too, for volumes with cubic voxels (else z is kept)"
    )
    min_size: int = setting(
        DEFAULT_MIN_SIZE,
        "with automatic levels: the smallest side an octave may have, in pixels",
    )
    keep_dtype: bool = setting(
        True, "Gaussian octaves of an integer image (uint8, uint16) keep its dtype"
    )


def run(source: Source, settings: PyramidSettings) -> Job:
    """Check ``settings`` for ``source``; return the job that builds the layers."""
    if source.is_lazy and settings.output != "multiscale":
        raise ValueError(
            f"{source.name!r} is dask/zarr backed (out of core): show its pyramid as "
            f"{OUTPUTS['multiscale']!r}, computed chunk by chunk as you view it; "
            f"{OUTPUTS[settings.output]!r} would load it whole"
        )
    n_levels = pyramid_depth(
        source.data.shape,
        settings.levels,
        channel_axis=source.channel_axis,
        reduce_z=settings.reduce_z,
        min_size=settings.min_size,
    )
    if n_levels < 2:
        raise ValueError(_one_level_message(source, settings))
    return Job(
        description=f"{settings.kind.capitalize()} pyramid of {source.name}",
        steps=_pyramid_steps(source, settings, n_levels),
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
        return f"{source.name} laplacian residual (octave {k})"
    return f"{source.name} {kind} octave {k}"


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
    name = f"{source.name} {settings.kind}"
    if settings.output == "multiscale":
        layer = multiscale_layer(levels, source, name=f"{name} pyramid", band=band)
        return Result([layer])
    if settings.output == "stack":
        stack = equal_size_levels(levels)
        yield Step(total, total, "stacked")
        layer = stack_layer(stack, source, name=f"{name} octaves (stack)", band=band)
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
