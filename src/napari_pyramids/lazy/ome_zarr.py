"""Write a Gaussian pyramid as OME-Zarr (NGFF multiscales), and read one back.

The writer streams: it stores one level at a time, band by band, and computes
level ``k + 1`` from level ``k`` as stored (so peak memory stays a few blocks
whatever the image size). Integer images keep their dtype on disk; the float
levels that the next REDUCE needs then go to a scratch store beside the output,
so every stored level equals the in-memory pyramid
(``gaussian_pyramid(image, preserve_dtype=True)``) exactly, not a chain of
rounded levels.

Metadata is written by ome-zarr-py (``write_multiscales_metadata``): axes, and
per level a ``scale`` of ``base * 2**k`` on the reduced axes with a
``translation`` equal to the base translate. That is exact for Burt & Adelson's
REDUCE, which keeps sample ``2j`` (DESIGN.md, "Alignment"); it is *not* the
``(2**k - 1) / 2`` offset an area-averaging writer records.

Atomicity (:func:`~napari_pyramids.lazy.staging.staged_store`): everything is
written under a hidden temporary name beside ``path`` and renamed to ``path``
only after the last level and the metadata are complete. A failure or a cancel
(closing :func:`iter_write_ome_zarr`) removes the temporary store, so a store
at ``path`` is always complete. A writer killed outright cannot clean up; the
next write to the same ``path`` removes the temporary folders of writers that
are no longer running.

References
----------
.. [1] J. Moore et al., "OME-Zarr: a cloud-optimized bioimaging file format with
   international community support", Histochemistry and Cell Biology 160,
   223-251, 2023. NGFF specification: https://ngff.openmicroscopy.org/
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import zarr
from ome_zarr.format import format_from_version
from ome_zarr.writer import write_multiscales_metadata

from napari_pyramids.core import pyramid as core
from napari_pyramids.core.pyramid import DEFAULT_A
from napari_pyramids.lazy import cluster
from napari_pyramids.lazy import pyramid as lazy
from napari_pyramids.lazy.staging import check_target, staged_store
from napari_pyramids.progress import function_form

__all__ = [
    "OmeZarrPyramid",
    "iter_write_ome_zarr",
    "read_ome_zarr",
    "write_ome_zarr",
]

#: Bands (groups of block rows along the first axis) per level: the writer yields
#: after each, which bounds how long a cancel waits.
_BANDS_PER_LEVEL = 4


@dataclass(frozen=True)
class _Plan:
    """What to write: the (lazy) source, its axes and the level geometry."""

    source: da.Array | None  # the image, channel axis first; None for a pyramid
    given: list[da.Array] | None  # the levels, when a pyramid was given
    axis_names: tuple[str, ...]
    reduced: tuple[int, ...]
    n_levels: int
    out_dtype: np.dtype
    chunks: tuple[tuple[int, ...], ...]  # level-0 chunks
    axis0_blocks: list[tuple[int, ...]]  # per level, to split it into bands


def _axis_names(n_spatial: int, has_channel: bool) -> tuple[str, ...]:
    names = ("z", "y", "x")[-n_spatial:]
    return ("c", *names) if has_channel else names


def _check_ndim(ndim: int, channel_axis: int | None, shape) -> None:
    n_spatial = ndim - (channel_axis is not None)
    if n_spatial not in (2, 3):
        raise ValueError(
            f"write_ome_zarr writes 2-D (y, x) or 3-D (z, y, x) images (plus an "
            f"optional channel_axis), but got shape {tuple(shape)}"
            + (" with a channel axis" if channel_axis is not None else "")
            + "; select one time point or channel first (e.g. image[t]), or pass "
            "channel_axis for colour"
        )


def _plan_image(
    image, levels, channel_axis, reduce_z, min_size, preserve_dtype, chunks
):
    arr = lazy.as_dask(image)
    _check_ndim(arr.ndim, channel_axis, arr.shape)
    if channel_axis is not None:
        core.spatial_axes(arr.ndim, channel_axis=channel_axis)  # range check
        arr = da.moveaxis(arr, channel_axis, 0)
        channel_axis = 0
    axes, n_levels = core.pyramid_plan(
        arr.shape,
        levels,
        channel_axis=channel_axis,
        reduce_z=reduce_z,
        min_size=min_size,
    )
    if channel_axis is not None:  # one channel per block: channels are independent
        arr = arr.rechunk({0: 1})
    arr = arr.rechunk(lazy.level_chunks(arr, axes, chunks))
    out_dtype = arr.dtype if preserve_dtype else core.float_dtype(arr.dtype)
    blocks = [arr.chunks[0]]
    for _ in range(n_levels - 1):  # the chunks iter_write_ome_zarr will give
        if 0 in axes:
            n = math.ceil(sum(blocks[-1]) / 2)
            blocks.append(lazy.side_chunks(n, arr.chunks[0][0]))
        else:
            blocks.append(blocks[-1])
    return _Plan(
        source=arr,
        given=None,
        axis_names=_axis_names(
            arr.ndim - (channel_axis is not None), channel_axis == 0
        ),
        reduced=axes,
        n_levels=n_levels,
        out_dtype=np.dtype(out_dtype),
        chunks=arr.chunks,
        axis0_blocks=blocks,
    )


def _plan_pyramid(pyramid, channel_axis, chunks):
    levels = [lazy.as_dask(level, f"level {k}") for k, level in enumerate(pyramid)]
    first = levels[0]
    _check_ndim(first.ndim, channel_axis, first.shape)
    if channel_axis is not None:
        core.spatial_axes(first.ndim, channel_axis=channel_axis)
        levels = [da.moveaxis(level, channel_axis, 0) for level in levels]
        first = levels[0]
    reduced = tuple(
        ax
        for ax in range(first.ndim)
        if any(lv.shape[ax] != first.shape[ax] for lv in levels)
    )
    for k, level in enumerate(levels):
        expected = tuple(
            math.ceil(n / 2**k) if ax in reduced else n
            for ax, n in enumerate(first.shape)
        )
        if level.shape != expected or level.dtype != first.dtype:
            raise ValueError(
                f"level {k} has shape {level.shape} and dtype {level.dtype}, but a "
                f"pyramid of level 0 {first.shape} {first.dtype} needs {expected} "
                f"{first.dtype} (each level half the one above, rounded up); "
                "pass the image instead to compute its pyramid"
            )
    # every level in level 0's blocks (halved along the reduced axes)
    spatial = reduced or tuple(range(first.ndim - 2, first.ndim))
    first = first.rechunk(lazy.level_chunks(first, spatial, chunks))
    side = [first.chunks[ax][0] for ax in spatial]
    kept = {ax: first.chunks[ax] for ax in range(first.ndim) if ax not in spatial}
    levels = [
        lv.rechunk(kept).rechunk(lazy.level_chunks(lv.rechunk(kept), spatial, side))
        for lv in levels
    ]
    return _Plan(
        source=None,
        given=levels,
        axis_names=_axis_names(
            first.ndim - (channel_axis is not None), channel_axis is not None
        ),
        reduced=reduced,
        n_levels=len(levels),
        out_dtype=np.dtype(first.dtype),
        chunks=first.chunks,
        axis0_blocks=[lv.chunks[0] for lv in levels],
    )


def _bands(chunks: Sequence[int], n_bands: int) -> list[slice]:
    """Split axis-0 blocks into at most ``n_bands`` runs of whole blocks."""
    edges = np.cumsum((0, *chunks))
    per = math.ceil(len(chunks) / n_bands)
    return [
        slice(int(edges[i]), int(edges[min(i + per, len(chunks))]))
        for i in range(0, len(chunks), per)
    ]


def _create(group, name, like: da.Array, dtype, fmt, compressors, dims):
    chunks = tuple(c[0] for c in like.chunks)
    kwargs = {"dimension_names": dims} if fmt.zarr_format == 3 else {}
    return group.create_array(
        name,
        shape=like.shape,
        dtype=dtype,
        chunks=chunks,
        compressors=compressors,
        chunk_key_encoding=fmt.chunk_key_encoding,
        **kwargs,
    )


def iter_write_ome_zarr(
    image_or_pyramid,
    path,
    *,
    levels: int | None = None,
    overwrite: bool = False,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    a: float = DEFAULT_A,
    min_size: int = core.DEFAULT_MIN_SIZE,
    preserve_dtype: bool = True,
    chunks: int | Sequence[int] | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    name: str | None = None,
    version: str = "0.5",
    compressors="auto",
    client=None,
) -> Generator[tuple[int, int], None, Path]:
    """Generator form of :func:`write_ome_zarr`: yields ``(done, total)`` bands
    and returns the written store's path.

    Closing the generator early (a cancel) removes everything written so far;
    nothing appears at ``path``. Parameters are those of :func:`write_ome_zarr`.
    """
    path = Path(os.fspath(path))
    check_target(path, overwrite)
    if isinstance(image_or_pyramid, (list, tuple)):
        if not image_or_pyramid:
            raise ValueError("the pyramid is an empty list; pass an image or levels")
        if levels is not None:
            raise ValueError(
                "levels applies when an image is given; a pyramid brings its own levels"
            )
        plan = _plan_pyramid(image_or_pyramid, channel_axis, chunks)
    else:
        plan = _plan_image(
            image_or_pyramid,
            levels,
            channel_axis,
            reduce_z,
            min_size,
            preserve_dtype,
            chunks,
        )
    a = core.check_a(a)
    fmt = format_from_version(version)
    spatial = [ax for ax, n in enumerate(plan.axis_names) if n != "c"]
    base_scale = _per_axis(scale, spatial, len(plan.axis_names), 1.0, "scale")
    base_shift = _per_axis(translate, spatial, len(plan.axis_names), 0.0, "translate")

    float_dtype = core.float_dtype(plan.out_dtype)
    floats_kept = (  # the float levels the next REDUCE needs, on a scratch store
        plan.given is None and plan.out_dtype != float_dtype and plan.n_levels > 2
    )
    with staged_store(path, overwrite, scratch=floats_kept) as (temp, scratch_dir):
        group = zarr.open_group(temp, mode="w", zarr_format=fmt.zarr_format)
        scratch = None
        if scratch_dir is not None:
            scratch = zarr.open_group(scratch_dir, mode="w", zarr_format=3)
        side = [plan.chunks[ax][0] for ax in plan.reduced]
        shapes, previous = [], None
        total = sum(len(_bands(b, _BANDS_PER_LEVEL)) for b in plan.axis0_blocks)
        done = 0
        with cluster.scheduler_for(client) as scheduler:
            for k in range(plan.n_levels):
                if plan.given is not None:
                    level, floats = plan.given[k], None
                elif k == 0:
                    level, floats = plan.source, None
                else:
                    floats = lazy.reduce_lazy(
                        previous,
                        a=a,
                        channel_axis=0 if "c" in plan.axis_names else None,
                        reduce_z=reduce_z,
                    )
                    floats = floats.rechunk(
                        lazy.level_chunks(floats, plan.reduced, side)
                    )
                    level = lazy.cast_lazy(floats, plan.out_dtype)
                target = _create(
                    group,
                    f"s{k}",
                    level,
                    plan.out_dtype,
                    fmt,
                    compressors,
                    list(plan.axis_names),
                )
                sources, targets = [level], [target]
                if scratch is not None and 0 < k < plan.n_levels - 1:
                    sources.append(floats)
                    targets.append(
                        _create(scratch, f"s{k}", floats, float_dtype, fmt, None, None)
                    )
                for band in _bands(level.chunks[0], _BANDS_PER_LEVEL):
                    da.store(
                        [s[band] for s in sources],
                        targets,
                        regions=[(band,)] * len(targets),
                        lock=False,
                        scheduler=scheduler,
                    )
                    done += 1
                    yield done, total
                shapes.append(level.shape)
                stored = targets[-1] if len(targets) > 1 else target
                previous = lazy.as_float(da.from_zarr(stored).rechunk(level.chunks))
        datasets = [
            {
                "path": f"s{k}",
                "coordinateTransformations": [
                    {
                        "type": "scale",
                        "scale": _level_scale(base_scale, plan.reduced, k),
                    },
                    {"type": "translation", "translation": base_shift},
                ],
            }
            for k in range(plan.n_levels)
        ]
        axes = [
            {"name": n, "type": "channel" if n == "c" else "space"}
            for n in plan.axis_names
        ]
        write_multiscales_metadata(
            group, datasets, fmt=fmt, axes=axes, name=name or path.name
        )
    return path


def _per_axis(values, spatial, ndim, default, what) -> list[float]:
    out = [1.0 if what == "scale" else 0.0] * ndim
    if values is None:
        for ax in spatial:
            out[ax] = default
        return out
    values = [float(v) for v in np.ravel(values)]
    if len(values) != len(spatial):
        raise ValueError(
            f"{what} has {len(values)} values but the image has {len(spatial)} "
            f"spatial axes; give one {what} per spatial axis"
        )
    usable = all(math.isfinite(v) for v in values) and (
        what != "scale" or min(values) > 0
    )
    if not usable:
        need = "positive" if what == "scale" else "finite"
        raise ValueError(
            f"{what} must be {need} numbers (one per spatial axis), got {values}"
        )
    for ax, v in zip(spatial, values):
        out[ax] = v
    return out


def _level_scale(base: Sequence[float], reduced: Sequence[int], k: int) -> list[float]:
    return [s * 2**k if ax in reduced else s for ax, s in enumerate(base)]


_WRITE_DOC = """Write an image's Gaussian pyramid (or a given pyramid) as OME-Zarr.

Parameters
----------
image_or_pyramid : array_like or list of array_like
    A 2-D (y, x) or 3-D (z, y, x) image (numpy, dask or zarr; optionally with
    a ``channel_axis``), whose pyramid is computed level by level without
    loading it; or a list of levels (as from :func:`gaussian_pyramid`), written
    as given.
path : str or os.PathLike
    The ``.zarr`` / ``.ome.zarr`` folder to create.
levels : int, optional
    Number of levels for an image (level 0 included); ``None`` stops before
    the smallest side falls below ``min_size``.
overwrite : bool
    Replace an existing ``path``, if it is an empty folder or an OME-Zarr
    image as this function writes it (metadata and level folders only);
    anything else (a file, a folder with other files) is refused. Without
    it an existing path is an error.
channel_axis : int, optional
    Colour/channel axis; stored first (axis ``c``), never reduced.
reduce_z : bool
    Reduce z too (isotropic volumes); by default z is kept at every level.
a : float
    REDUCE's generating-kernel parameter (0.375: binomial 1 4 6 4 1 / 16).
min_size : int
    Smallest side kept when ``levels`` is None.
preserve_dtype : bool
    Store every level in the input dtype (default; integers are rounded and
    clipped). ``False`` stores float32 (float64 for float64 input and for
    integers wider than 16 bits).
chunks : int or sequence of int, optional
    Block side along the reduced axes, the same for every level (stored
    chunks and computing blocks). Default: the input's block side if it is
    at least 256, else 1024 (2-D) or 128 (3-D).
scale, translate : sequence of float, optional
    Pixel size and origin of level 0, one value per spatial axis (e.g. a
    napari layer's ``scale`` and ``translate``). Level ``k`` gets
    ``scale * 2**k`` on reduced axes and the same translation.
name : str, optional
    Image name in the metadata; defaults to the folder name.
version : {"0.5", "0.4"}
    NGFF version: 0.5 is Zarr v3, 0.4 is Zarr v2 (wider tool support).
compressors : optional
    zarr compressors for the stored levels; ``"auto"`` is zarr's default.
client : distributed.Client or str, optional
    Where to compute: a Client or a scheduler address. By default the active
    Client if there is one, else local threads.
progress : callable(done, total), optional
    Called after every band of blocks written.
cancel : callable() -> bool, optional
    Checked between bands; True removes what was written and raises
    :class:`napari_pyramids.progress.Cancelled` (nothing appears at ``path``).

Returns
-------
pathlib.Path
    The written store.

Raises
------
FileExistsError
    ``path`` exists and ``overwrite`` is False, or it is not a store that
    ``overwrite=True`` may replace.
PermissionError, FileNotFoundError
    The location cannot be written.
ValueError
    The image is not 2-D/3-D, or the pyramid's levels do not fit together.
"""

write_ome_zarr = function_form(
    iter_write_ome_zarr, name="write_ome_zarr", doc=_WRITE_DOC, returns="Path"
)


@dataclass(frozen=True)
class OmeZarrPyramid:
    """An OME-Zarr multiscale image as lazy levels plus level-0 geometry."""

    levels: list[da.Array]
    axes: tuple[str, ...]
    scale: tuple[float, ...]  # level 0, one per axis
    translate: tuple[float, ...]
    name: str | None


def read_ome_zarr(path) -> OmeZarrPyramid:
    """Open an OME-Zarr multiscale image lazily, checking its metadata first.

    Raises a ValueError that names the problem when ``path`` holds no readable
    multiscale image: not a zarr group, no (or empty) ``multiscales``, missing
    or ill-sized ``axes``, a scale or translation of the wrong length (or a
    scale that is not positive), a level that is missing or unreadable.
    """
    where = os.fspath(path)
    group = _opened(
        lambda: zarr.open_group(where, mode="r"), f"{where}: not a readable zarr group"
    )
    image = _multiscale(group.attrs.asdict(), where)
    axes = _axes(image.get("axes"), where)
    datasets = image.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise ValueError(f"{where}: the multiscale image lists no datasets (levels)")
    levels, geometry = [], None
    for k, dataset in enumerate(datasets):
        name = dataset.get("path") if isinstance(dataset, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"{where}: dataset {k} names no path")
        array = _opened(
            lambda name=name: zarr.open_array(store=group.store, path=name, mode="r"),
            f"{where}: level {name} is missing or unreadable",
        )
        if array.ndim != len(axes):
            raise ValueError(
                f"{where}: level {name} has {array.ndim} dimensions but the metadata "
                f"names {len(axes)} axes ({', '.join(axes)})"
            )
        scale, translate = _transforms(dataset, len(axes), f"{where}: level {name}")
        geometry = geometry or (scale, translate)
        levels.append(da.from_zarr(array))
    return OmeZarrPyramid(
        levels=levels,
        axes=axes,
        scale=geometry[0],
        translate=geometry[1],
        name=image.get("name") if isinstance(image.get("name"), str) else None,
    )


#: What zarr and json raise on a store that is not what it claims to be.
_READ_ERRORS = (ValueError, KeyError, TypeError, OSError)


def _opened(open_it, problem: str):
    """``open_it()``, with a failure turned into a ValueError naming ``problem``."""
    try:
        return open_it()
    except _READ_ERRORS as err:
        raise ValueError(f"{problem} ({type(err).__name__}: {err})") from err


def _multiscale(attrs, where: str) -> dict:
    """The first multiscale image of a group's attributes (NGFF 0.4 or 0.5)."""
    ome = attrs.get("ome", attrs) if isinstance(attrs, dict) else None
    images = ome.get("multiscales") if isinstance(ome, dict) else None
    if not isinstance(images, list) or not images or not isinstance(images[0], dict):
        raise ValueError(
            f"{where} is not an OME-Zarr image: its attributes hold no "
            "'multiscales' list with an image in it"
        )
    return images[0]


def _axes(axes, where: str) -> tuple[str, ...]:
    """Axis names from NGFF ``axes`` (dicts with a name, or plain names in 0.3)."""
    if not isinstance(axes, list) or not axes:
        raise ValueError(f"{where}: the multiscale image has no 'axes'")
    names = tuple(ax.get("name") if isinstance(ax, dict) else ax for ax in axes)
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{where}: 'axes' must name each axis once, got {axes}")
    return names


def _transforms(dataset: dict, ndim: int, what: str):
    """A level's scale and translation, one finite value per axis (scale > 0)."""
    scale, translate = (1.0,) * ndim, (0.0,) * ndim
    for t in dataset.get("coordinateTransformations") or []:
        kind = t.get("type") if isinstance(t, dict) else None
        if kind not in ("scale", "translation"):
            continue
        values = t.get(kind)
        if not isinstance(values, list) or len(values) != ndim:
            raise ValueError(f"{what}: its {kind} needs {ndim} values, got {values!r}")
        try:
            values = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: its {kind} {values!r} is not numbers") from None
        if not all(math.isfinite(v) for v in values) or (
            kind == "scale" and min(values) <= 0
        ):
            raise ValueError(f"{what}: its {kind} {list(values)} is not usable")
        if kind == "scale":
            scale = values
        else:
            translate = values
    return scale, translate
