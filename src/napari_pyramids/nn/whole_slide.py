"""Whole-slide segmentation: a 2-D image on disk in, OME-Zarr nuclei labels out.

:func:`segment_to_zarr` segments a zarr or dask image that need not fit in
memory, block by block, and writes its labels as an OME-Zarr multiscale
image. The labels are those of the in-memory :func:`~napari_pyramids.nn.
infer.segment` (up to the numbering of the ids) because every step computes
what the in-memory path computes, only in pieces:

1. **Network.** The same tiles (:class:`~napari_pyramids.nn.tiling.TileGrid`),
   normalised by the same percentiles (the same strided sample of the whole
   image), with the image-pooling branch pinned to the same coarse view of
   the whole image (:func:`~napari_pyramids.nn.context.coarse_view`,
   :func:`~napari_pyramids.nn.context.upsampled_view`). A coarser working
   grid (large nuclei) is made first (REDUCE octaves stored on disk, then
   the fractional area average window by window), and its probabilities
   come back to the image grid window by window
   (:meth:`~napari_pyramids.nn.rescale.Resampling.image_window`); an
   upsampled one (small nuclei) is made tile by tile from the image and
   each tile's kept part brought back to its image pixels, as in memory.
   Groups of tiles are stored as scratch arrays.
2. **Seeds.** 4-connected components of the core mask per block, joined
   across block faces by union-find, so a nucleus cut by block borders is
   one seed with its whole area (``min_seed`` applies to that) and its
   first pixel in raster order over the whole image (the order seeds have
   in memory, which decides who wins where two seeds meet).
3. **Growth.** Each block grows its seeds over the foreground on the block
   plus a halo of ``grow`` pixels (:func:`~napari_pyramids.nn.instances.
   grow_seeds`), exact for the block itself; unseeded foreground blobs
   (orphans) are joined across blocks the same way as seeds.
4. **Labels.** Instances below ``min_size`` (whole-image sizes) are dropped
   and the rest numbered 1..n, seeds first then orphans, each in raster
   order of their first pixel, as in memory. Levels ``k >= 1`` of the
   label pyramid keep every ``2**k``-th sample from 0 (nearest, never
   interpolated: the grid of the image's REDUCE levels).

Memory is bounded by the block (``block_size``, plus the network's tile),
and by tables of a few numbers per nucleus, not by the image. The blocks
run on local threads or, when a ``dask.distributed`` Client is active (or
an address is given), on its workers (:func:`~napari_pyramids.lazy.cluster.
scheduler_for`); the workers then need the image, the output folder and its
scratch folder on a filesystem they share with the caller.

Nothing half-written looks complete: the labels are written under a hidden
temporary name beside ``out`` (with a scratch folder beside it) and renamed
to ``out`` only when every level and the metadata are written; a failure or
a cancel removes both (the next write to ``out`` removes those of a writer
that was killed outright).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Generator
from contextlib import closing, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import dask.array as da
import numpy as np
import torch
import zarr
from ome_zarr.format import format_from_version
from ome_zarr.writer import write_multiscales_metadata

from ..core.checks import check_finite
from ..core.pyramid import DEFAULT_MIN_SIZE, pyramid_depth
from ..lazy import cluster, ome_zarr
from ..lazy import pyramid as lazy
from ..lazy.staging import check_target, staged_store
from ..progress import function_form
from ..signatures import forwards_options
from .context import coarse_view, pin_image_pooling, pooled_vectors, upsampled_view
from .defaults import (
    CONTEXT_SIZE,
    CORE_THRESHOLD,
    OVERLAP,
    TILE_SIZE,
)
from .diameter import _check_diameter, _diameter_with, _min_sizes, working_scale
from .infer import SegmentationCancelled
from .instances import smallest_uint
from .normalize import percentile_range, sample_step
from .rescale import Resampling
from .runtime import ModelLike, _as_model, _inference_copy, resolve_device
from .slide_blocks import _Blocks, _join, _Joined, _raster_ranks
from .slide_store import _BlockStore, _Image, _Masks, _scratch_array, _Upsampled
from .slide_tasks import (
    _cpus,
    _grow_task,
    _label_task,
    _network_task,
    _Runner,
    _seed_task,
    _work_task,
)
from .tiling import TileGrid, _tile_workers, as_batch, check_tiling

__all__ = [
    "BLOCK_SIZE",
    "SlideLabels",
    "segment_slide_steps",
    "segment_to_zarr",
    "segment_to_zarr_steps",
]

#: Side of the blocks (pixels) the seeds, growth and labels are computed in,
#: and of the stored label chunks.
BLOCK_SIZE = 2048
#: Side of the window the diameter is estimated on when it is not given: the
#: whole image if it fits (the in-memory estimate), else its centre.
ESTIMATE_REGION = 4096

Steps = Generator[tuple[int, int], None, Path]


# ------------------------------------------------------------------ the driver
def _check_input(image, model, threshold, min_size, block_size):
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(
            f"expected a 2-D zarr, dask or numpy array, got {type(image).__name__}"
        )
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif":
        raise ValueError(f"image must be integer or float, got dtype {dtype}")
    if len(shape) != 2:
        raise ValueError(
            f"segment_to_zarr segments one 2-D image (y, x), got shape "
            f"{tuple(shape)}; pass one plane or channel (e.g. image[z], or "
            "image[..., 2] for the blue channel of an RGB scan), or segment a "
            "stack in memory with segment(np.asarray(stack), axes='zyx')"
        )
    if 0 in shape:
        raise ValueError(f"image is empty (shape {tuple(shape)})")
    if model.in_channels != 1:
        raise ValueError(
            f"the model takes {model.in_channels} channels; whole-slide "
            "segmentation takes one-channel models"
        )
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if min_size is not None and min_size < 1:
        raise ValueError(f"min_size must be at least 1 pixel, got {min_size}")
    if block_size < 64:
        raise ValueError(f"block_size must be at least 64 pixels, got {block_size}")


def _out_path(out) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(
            f"out must be the path of the .zarr folder to write, got "
            f"{type(out).__name__}"
        )
    return Path(os.fspath(out))


def _estimate(image: _Image, net, dev, threshold: float) -> float:
    """The nucleus diameter, estimated on the image (or its centre, if larger)."""
    spans = [
        ((n - min(n, ESTIMATE_REGION)) // 2, (n + min(n, ESTIMATE_REGION)) // 2)
        for n in image.shape
    ]
    return _diameter_with(net, dev, image.read(*spans), threshold)


def _sample_and_view(image: _Image, view: Callable) -> tuple[tuple, np.ndarray]:
    """``image``'s percentile range and ``view(read_rows)``, in one read.

    The percentiles are of the strided sample :func:`~napari_pyramids.nn.
    normalize.percentile_range` takes; ``view`` is the image-pooling view
    computed from the same bands (as in memory). Float values that are not
    finite are refused here, before any network runs.
    """
    height, width = image.shape
    step = sample_step(height * width)
    samples: list[np.ndarray] = []
    read_up_to = [0]

    def read_rows(rows: tuple[int, int]) -> np.ndarray:
        band = image.read_rows(rows)
        start = max(rows[0], read_up_to[0])  # bands may share a row
        if start < rows[1]:
            check_finite(band[start - rows[0] :])
            skip = start - rows[0] + (-start) % step
            samples.append(band[skip::step, ::step].copy())
            read_up_to[0] = rows[1]
        return band

    pooled = view(read_rows)
    if read_up_to[0] < height:  # rows the view leaves out are sampled too
        read_rows((read_up_to[0], height))
    return percentile_range(np.concatenate(samples)), pooled


def _working_grid(
    image: _Image, resampling: Resampling, scratch: Path, runner: _Runner, side: int
):
    """Make the working grid of a reduction on disk; yields once per stored level.

    The REDUCE octaves are stored one by one, each made from the one before
    as stored (as the in-memory pyramid makes it from the one before), then
    the fractional area average is made block by block. Returns the working
    grid as an :class:`_Image`.
    """
    dtype = np.float64 if image.dtype == np.float64 else np.float32
    octave = _Image(image.array, dtype)  # as to_work: the image in float first
    level = lazy.as_dask(image.array).astype(dtype).rechunk(side)
    for k in range(1, resampling.octaves + 1):
        level = lazy.reduce_lazy(level).rechunk(side)
        target = _scratch_array(scratch / f"octave{k}", level.shape, dtype, side)
        da.store(level, target, lock=False, scheduler=runner.client)
        yield
        level = da.from_zarr(target)
        octave = _Image(target)
    if resampling.work_shape == octave.shape:
        return octave
    work = scratch / "work"
    _scratch_array(work, resampling.work_shape, dtype, side)
    blocks = _Blocks(resampling.work_shape, side)
    task = partial(
        _work_task, resampling=resampling, octave=octave, work=str(work), blocks=blocks
    )
    for _ in runner.run(task, blocks.all()):
        pass
    yield
    return _Image(zarr.open_array(str(work), mode="r"))


def _network_blocks(
    tiles: TileGrid, group: int, resampling: Resampling, root: Path
) -> tuple[_BlockStore, list]:
    """Groups of ``group`` x ``group`` tiles and the store of what they keep.

    A group keeps its tiles' kept parts: on the working grid when it is
    coarser than the image, else on the image (the image rows and columns of
    an upsampled grid's kept parts, a partition of the image too).
    """
    rows = list(range(0, len(tiles.ys), group))
    cols = list(range(0, len(tiles.xs), group))
    on_work = resampling.scale < 1
    shape = resampling.work_shape if on_work else resampling.shape

    def cuts(axis: int, starts: list[int], kept) -> tuple[int, ...]:
        if on_work:
            inner = [kept[i][0] for i in starts]
        else:
            inner = [
                resampling.image_span(axis, kept[i][0], kept[i][1])[0] for i in starts
            ]
        return (*inner, shape[axis])

    store = _BlockStore(
        str(root), cuts(0, rows, tiles.keep_y), cuts(1, cols, tiles.keep_x)
    )
    root.mkdir()
    items = [
        (bi, bj, i0, min(i0 + group, len(tiles.ys)), j0, min(j0 + group, len(tiles.xs)))
        for bi, i0 in enumerate(rows)
        for bj, j0 in enumerate(cols)
    ]
    return store, items


def _final_ids(
    sizes: np.ndarray, orphans: _Joined, orphan_parts: dict, min_size: int
) -> tuple[np.ndarray, dict, int]:
    """Final ids: kept seeds, then kept orphans, each in raster order, as in memory."""
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    seeds_kept = int(keep.sum())
    seed_ids = np.zeros(len(sizes), np.int64)
    seed_ids[keep] = np.arange(1, seeds_kept + 1)
    orphan_keep = orphans.areas >= max(min_size, 1)
    ranks = _raster_ranks(orphans.first, orphan_keep, start=seeds_kept + 1)
    count = seeds_kept + int(orphan_keep.sum())
    dtype = smallest_uint(np.zeros(0, np.int64), count).dtype
    orphan_ids = {
        block: orphans.per_block(ranks, block, len(p.areas)).astype(dtype)
        for block, p in orphan_parts.items()
    }
    return seed_ids.astype(dtype), orphan_ids, count


def _write_metadata(group, levels: int, fmt, name: str, info: dict) -> None:
    datasets = [
        {
            "path": f"s{k}",
            "coordinateTransformations": [
                {"type": "scale", "scale": [2.0**k, 2.0**k]},
                {"type": "translation", "translation": [0.0, 0.0]},
            ],
        }
        for k in range(levels)
    ]
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    write_multiscales_metadata(group, datasets, fmt=fmt, axes=axes, name=name)
    group.attrs["napari_pyramids"] = info


class _Tally:
    """Counts the steps of :func:`segment_to_zarr_steps` as ``(done, total)``."""

    def __init__(self, total: int) -> None:
        self.done, self.total = 0, total

    def step(self) -> tuple[int, int]:
        self.done += 1
        return self.done, self.total

    def through(self, steps: Generator):
        """Run ``steps`` (one item per step), yielding the tally; return its value.

        ``steps`` is closed when this is (a cancel): its running blocks stop
        before the temporary folders are removed.
        """
        with closing(steps):
            while True:
                try:
                    next(steps)
                except StopIteration as finished:
                    return finished.value
                yield self.step()


def _seeds(runner: _Runner, blocks: _Blocks, masks: _Masks, scratch: Path, min_seed):
    """Core components per block, joined over the image into seeds.

    Yields per block; returns, per block, the lookup from its local core
    labels to global seed ids (raster order of the seeds' first pixels;
    components under ``min_seed`` pixels seed nothing), and the path of the
    stored local labels.
    """
    cores = str(scratch / "cores")
    _scratch_array(Path(cores), blocks.shape, np.int32, blocks.side)
    task = partial(_seed_task, blocks=blocks, masks=masks, cores=cores)
    parts = {}
    with closing(runner.run(task, blocks.all())) as results:
        for block, found in results:
            parts[block] = found
            yield
    seeds = _join(parts)
    ids = _raster_ranks(seeds.first, seeds.areas >= min_seed)
    lookups = {b: seeds.per_block(ids, b, len(p.areas)) for b, p in parts.items()}
    return lookups, cores


def _growth(runner, blocks: _Blocks, masks, cores: str, lookups: dict, grow, scratch):
    """Seeds grown block by block (each with a halo of ``grow``), orphans found.

    Yields per block; returns the pixel count per seed id and the orphans'
    parts (for :func:`_final_ids`), and the paths of the stored grown ids
    and orphan labels.
    """
    count = max((int(lut.max(initial=0)) for lut in lookups.values()), default=0)
    grown, orphans = str(scratch / "grown"), str(scratch / "orphans")
    _scratch_array(
        Path(grown), blocks.shape, smallest_uint(np.zeros(0), count).dtype, blocks.side
    )
    _scratch_array(Path(orphans), blocks.shape, np.int32, blocks.side)
    task = partial(
        _grow_task,
        blocks=blocks,
        masks=masks,
        cores=cores,
        grow=grow,
        grown=grown,
        orphans=orphans,
    )
    items = [
        (block, {b: lookups[b] for b in blocks.near(*block, grow)})
        for block in blocks.all()
    ]
    seed_sizes = np.zeros(count + 1, np.int64)
    parts = {}
    with closing(runner.run(task, items)) as results:
        for block, ids, counts, found in results:
            np.add.at(seed_sizes, ids, counts)
            parts[block] = found
            yield
    return (seed_sizes, _join(parts), parts), grown, orphans


def _label_array(group, name: str, shape, dtype, side: int, fmt):
    """A level of the output labels, chunked by the blocks."""
    return group.create_array(
        name,
        shape=tuple(shape),
        dtype=dtype,
        chunks=tuple(min(side, n) for n in shape),
        chunk_key_encoding=fmt.chunk_key_encoding,
        **({"dimension_names": ["y", "x"]} if fmt.zarr_format == 3 else {}),
    )


def segment_to_zarr_steps(
    image,
    out,
    model: ModelLike = "nuclei",
    *,
    diameter: float | None = None,
    tile_size: int = TILE_SIZE,
    overlap: int = OVERLAP,
    device: str | torch.device = "auto",
    threshold: float = CORE_THRESHOLD,
    min_size: int | None = None,
    context_size: int = CONTEXT_SIZE,
    block_size: int = BLOCK_SIZE,
    overwrite: bool = False,
    client=None,
    version: str = "0.5",
) -> Steps:
    """Generator form of :func:`segment_to_zarr`: yields ``(done, total)``.

    Closing it early (a cancel) stops between blocks and removes everything
    written; nothing appears at ``out``. Returns the written path.
    """
    net0 = _as_model(model)
    _check_input(image, net0, threshold, min_size, block_size)
    check_tiling(tile_size, overlap, context_size)
    path = _out_path(out)
    check_target(path, overwrite)
    source = _Image(image)
    if diameter is not None:
        diameter = _check_diameter(diameter, source.shape)
    fmt = format_from_version(version)
    dev = resolve_device(device)
    net = _inference_copy(net0, dev)
    estimated = diameter is None
    if estimated:
        diameter = _estimate(source, net, dev, threshold)
    resampling = Resampling.for_scale(source.shape, working_scale(diameter))
    sizes = _min_sizes(resampling.scale, min_size)
    blocks = _Blocks(source.shape, block_size)
    tiles = TileGrid.for_shape(resampling.work_shape, tile_size, overlap)
    group = max(1, block_size // max(1, tiles.tile_h - overlap))
    n_net = math.ceil(len(tiles.ys) / group) * math.ceil(len(tiles.xs) / group)
    n_levels = pyramid_depth(source.shape, min_size=DEFAULT_MIN_SIZE)
    fractional = resampling.scale < 1 and (
        resampling.work_shape != resampling._octave_shape()
    )
    total = resampling.octaves + fractional + 1 + n_net + 3 * len(blocks.all())
    total += n_levels - 1
    tally = _Tally(total)
    yield 0, total

    with staged_store(path, overwrite, scratch=True) as (temp, scratch):
        with cluster.scheduler_for(client) as scheduler:
            runner = _Runner(scheduler, _cpus())
            grid = source
            if resampling.scale < 1:
                making = _working_grid(source, resampling, scratch, runner, block_size)
                grid = yield from tally.through(making)
            sampled, view = (
                grid,
                partial(
                    coarse_view,
                    shape=grid.shape,
                    size=context_size,
                    dtype=grid.dtype,
                ),
            )
            if resampling.scale > 1:  # as in memory: the image's percentiles
                grid = _Upsampled(source, resampling)
                view = partial(
                    upsampled_view,
                    dtype=source.dtype,
                    resampling=resampling,
                    size=context_size,
                )
            value_range, view = _sample_and_view(sampled, view)
            if tiles.pins_pooling(context_size):
                vectors = pooled_vectors(net, as_batch(view, value_range, dev))
                pin_image_pooling(net, vectors)
            yield tally.step()

            store, items = _network_blocks(tiles, group, resampling, scratch / "net")
            task = partial(
                _network_task,
                tiles=tiles,
                device=str(dev),
                value_range=value_range,
                threshold=threshold,
                resampling=resampling,
                store=store,
            )
            with (
                _tile_workers(dev, len(items)) if scheduler is None else nullcontext(1)
            ) as workers:
                yield from tally.through(
                    runner.run(task, items, threads=workers, grid=grid, net=net)
                )
            masks = _Masks(store, resampling, threshold)
            lookups, cores = yield from tally.through(
                _seeds(runner, blocks, masks, scratch, sizes["min_seed"])
            )
            sizes_and_orphans, grown, orphans = yield from tally.through(
                _growth(runner, blocks, masks, cores, lookups, sizes["grow"], scratch)
            )
            del lookups
            seeds, orphan_ids, count = _final_ids(*sizes_and_orphans, sizes["min_size"])
            labels = zarr.open_group(str(temp), mode="w", zarr_format=fmt.zarr_format)
            level = _label_array(
                labels, "s0", source.shape, seeds.dtype, block_size, fmt
            )
            task = partial(
                _label_task,
                blocks=blocks,
                grown=grown,
                orphans=orphans,
                out=str(temp / "s0"),
            )
            yield from tally.through(
                runner.run(task, blocks.all(), seed_ids=seeds, orphan_ids=orphan_ids)
            )
            for k in range(1, n_levels):
                coarser = da.from_zarr(level)[::2, ::2]
                level = _label_array(
                    labels, f"s{k}", coarser.shape, coarser.dtype, block_size, fmt
                )
                da.store(
                    coarser.rechunk(level.chunks),
                    level,
                    lock=False,
                    scheduler=scheduler,
                )
                yield tally.step()
        _write_metadata(
            labels,
            n_levels,
            fmt,
            path.name,
            {
                "nuclei": count,
                "diameter": float(diameter),
                "diameter_estimated": estimated,
                "working_scale": resampling.scale,
            },
        )
    return path


_SEGMENT_TO_ZARR_DOC = """Segment a slide on disk block by block into OME-Zarr labels.

The labels equal those of :func:`~napari_pyramids.nn.infer.segment` on
the same image in memory, up to the numbering of the ids (see the module
notes for how), with memory bounded by ``block_size``, not the image.

Parameters
----------
image : zarr.Array, dask.array.Array or ndarray (H, W)
    One plane (one channel) of any integer or float dtype; never loaded
    whole, never modified.
out : str or os.PathLike
    The ``.zarr`` folder to write: an OME-Zarr multiscale labels image
    (axes y, x), level ``k`` every ``2**k``-th sample of level 0 (scale
    ``2**k``, translation 0). Open it with :func:`~napari_pyramids.
    read_ome_zarr`.
model
    As in :func:`~napari_pyramids.nn.infer.segment`.
diameter, tile_size, overlap, device, threshold, min_size, context_size
    Keyword options as in :func:`~napari_pyramids.nn.infer.segment`.
    ``diameter=None`` estimates it on the image if it is at most
    ``ESTIMATE_REGION`` px on each side (the in-memory estimate), else on
    its central window of that size.
block_size : int
    Side of the blocks (and of the stored chunks), pixels.
overwrite : bool
    Replace an existing ``out`` if it is an OME-Zarr image (metadata and
    level folders only, as this function writes it); anything else is
    refused.
client : distributed.Client or str, optional
    Where the blocks run: a Client or a scheduler address; by default the
    active Client if there is one, else local threads. Workers must see
    ``image`` and the folder of ``out``.
version : {"0.5", "0.4"}
    NGFF version of the output (Zarr v3 or v2).
progress : callable(done, total), optional
    Called with ``(0, total)`` and after every block (and level).
cancel : callable() -> bool, optional
    Checked between blocks; True stops, removes what was written, and
    raises :class:`~napari_pyramids.nn.infer.SegmentationCancelled`.

Returns
-------
pathlib.Path
    ``out``; its attributes record the number of nuclei and the diameter.

Raises
------
FileExistsError
    ``out`` exists and ``overwrite`` is False (or it is not replaceable).
ValueError, TypeError
    The image is not one 2-D plane of numbers, or an option is out of range.
"""

segment_to_zarr = function_form(
    segment_to_zarr_steps,
    name="segment_to_zarr",
    doc=_SEGMENT_TO_ZARR_DOC,
    returns="Path",
    cancelled=SegmentationCancelled,
)


@dataclass(frozen=True)
class SlideLabels:
    """Labels of a whole slide on disk, for a viewer: lazy levels, finest first."""

    levels: list[da.Array]
    path: Path
    count: int


@forwards_options(segment_to_zarr_steps, drop=("overwrite",))
def segment_slide_steps(
    image,
    model: ModelLike = "nuclei",
    *,
    name: str = "labels",
    folder=None,
    **options,
) -> Generator[tuple[int, int], None, SlideLabels]:
    """Segment a slide into a new labels folder and open its label pyramid lazily.

    What a viewer needs (the Segment widget, for dask- or zarr-backed
    layers): the labels go to a new ``<name>.<tag>.zarr`` in ``folder``
    (default: ``napari-pyramids-labels`` in the temporary directory), which
    must stay while they are shown. Yields as :func:`segment_to_zarr_steps`
    (``options`` are its options) and returns a :class:`SlideLabels`.
    """
    where = Path(folder) if folder is not None else _default_folder()
    where.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "labels"
    out = where / f"{stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.zarr"
    path = yield from segment_to_zarr_steps(image, out, model, **options)
    count = zarr.open_group(str(path), mode="r").attrs["napari_pyramids"]["nuclei"]
    return SlideLabels(ome_zarr.read_ome_zarr(path).levels, path, int(count))


def _default_folder() -> Path:
    return Path(tempfile.gettempdir()) / "napari-pyramids-labels"
