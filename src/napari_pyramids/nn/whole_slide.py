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
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
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
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..core.checks import check_finite
from ..core.pyramid import DEFAULT_MIN_SIZE, pyramid_depth
from ..lazy import cluster, ome_zarr
from ..lazy import pyramid as lazy
from ..progress import function_form
from ..signatures import forwards_options
from . import defaults
from .context import coarse_view, pin_image_pooling, pooled_vectors, upsampled_view
from .defaults import (
    CONTEXT_SIZE,
    CORE_THRESHOLD,
    OVERLAP,
    TILE_SIZE,
)
from .diameter import _check_diameter, _diameter_with, _min_sizes, working_scale
from .infer import SegmentationCancelled
from .instances import components, grow_seeds, smallest_uint
from .normalize import percentile_range, sample_step
from .rescale import Resampling
from .runtime import ModelLike, _as_model, _inference_copy, resolve_device
from .synthetic import BACKGROUND, CORE
from .tiling import TileGrid, _tile_workers, as_batch, check_tiling, nucleus_masks

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
#: Bits of the stored masks.
_CORE_BIT, _FOREGROUND_BIT = 1, 2

Steps = Generator[tuple[int, int], None, Path]


# ------------------------------------------------------------------ reading
@dataclass(frozen=True)
class _Image:
    """A 2-D array (numpy, zarr, dask or anything sliceable) read window by window.

    A dask array is computed with the synchronous scheduler inside the task
    that reads it, so a read never waits on the cluster it runs on.
    """

    array: object
    cast: type | None = None  # read as this dtype

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(n) for n in self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.cast or self.array.dtype)

    def read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        part = self.array[rows[0] : rows[1], cols[0] : cols[1]]
        if isinstance(part, da.Array):
            part = part.compute(scheduler="sync")
        part = np.asarray(part)
        return part if self.cast is None else part.astype(self.cast, copy=False)

    def read_rows(self, rows: tuple[int, int]) -> np.ndarray:
        return self.read(rows, (0, self.shape[1]))

    def __getitem__(self, index: tuple[slice, slice]) -> np.ndarray:
        """``image[y0:y1, x0:x1]`` as numpy (as :meth:`Resampling.work_tile` reads)."""
        rows, cols = index
        return self.read((rows.start, rows.stop), (cols.start, cols.stop))


@dataclass(frozen=True)
class _Upsampled:
    """The working grid of an upsampling, made tile by tile from the image."""

    image: _Image
    resampling: Resampling

    @property
    def shape(self) -> tuple[int, int]:
        return self.resampling.work_shape

    def read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        return self.resampling.work_tile(self.image, rows, cols)


@dataclass(frozen=True)
class _BlockStore:
    """Scratch arrays, one per rectangle of a partition of a grid.

    Rectangle ``(i, j)`` spans ``y_cuts[i]:y_cuts[i + 1]`` and
    ``x_cuts[j]:x_cuts[j + 1]``; each is its own zarr array (any leading
    axes, e.g. two probability maps), so blocks written at once by
    different workers never share a chunk.
    """

    root: str
    y_cuts: tuple[int, ...]
    x_cuts: tuple[int, ...]

    def rect(self, i: int, j: int) -> tuple[int, int, int, int]:
        return self.y_cuts[i], self.y_cuts[i + 1], self.x_cuts[j], self.x_cuts[j + 1]

    def save(self, i: int, j: int, data: np.ndarray) -> None:
        chunks = (*data.shape[:-2], *(min(512, n) for n in data.shape[-2:]))
        array = zarr.create_array(
            store=os.path.join(self.root, f"{i}.{j}"),
            shape=data.shape,
            dtype=data.dtype,
            chunks=chunks,
        )
        array[...] = data

    def read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """The window ``rows`` x ``cols`` of the grid, from the rectangles it meets."""
        parts = []
        for i in _spans(self.y_cuts, rows):
            row = []
            for j in _spans(self.x_cuts, cols):
                y0, y1, x0, x1 = self.rect(i, j)
                array = zarr.open_array(os.path.join(self.root, f"{i}.{j}"), mode="r")
                row.append(
                    array[
                        ...,
                        max(rows[0], y0) - y0 : min(rows[1], y1) - y0,
                        max(cols[0], x0) - x0 : min(cols[1], x1) - x0,
                    ]
                )
            parts.append(np.concatenate(row, axis=-1))
        return np.concatenate(parts, axis=-2)


def _spans(cuts: tuple[int, ...], span: tuple[int, int]) -> range:
    """The indices of the intervals ``cuts[i]:cuts[i + 1]`` that ``span`` meets."""
    first = int(np.searchsorted(cuts, span[0], side="right")) - 1
    last = int(np.searchsorted(cuts, span[1], side="left"))
    return range(max(first, 0), min(last, len(cuts) - 1))


@dataclass(frozen=True)
class _Masks:
    """The core and foreground masks of any window of the image grid (bits).

    From the stored masks when the network ran on the image grid, or made
    from the stored working-grid probabilities (bilinearly, as in memory).
    """

    store: _BlockStore
    resampling: Resampling
    threshold: float

    def read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        if self.resampling.scale >= 1:  # stored on the image grid
            return self.store.read(rows, cols)
        core, background = self.resampling.image_window(self.store.read, rows, cols)
        return _bits(core > self.threshold, background < defaults.FOREGROUND_BELOW)


# ------------------------------------------------------------------ running
class _Runner:
    """Runs block tasks on local threads or on a dask.distributed cluster.

    :meth:`run` calls ``task(item, **shared)`` for each item and yields the
    results as they complete, with a few tasks queued beyond those running;
    closing it cancels what has not started. On a cluster, ``shared``
    values (the model, lookup tables) are sent to each worker once.
    """

    def __init__(self, client, threads: int) -> None:
        self.client = client
        self.threads = max(1, threads)

    def run(self, task: Callable, items: list, *, threads: int | None = None, **shared):
        if self.client is not None:
            yield from self._run_distributed(task, items, shared)
            return
        workers = max(1, min(threads or self.threads, len(items)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending, queue = deque(), deque(items)
            try:
                while queue or pending:
                    while queue and len(pending) <= workers:
                        pending.append(pool.submit(task, queue.popleft(), **shared))
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    def _run_distributed(self, task: Callable, items: list, shared: dict):
        from distributed import as_completed

        sent = {
            key: self.client.scatter(value, broadcast=True, hash=False)
            for key, value in shared.items()
        }
        slots = 2 * max(1, len(self.client.scheduler_info().get("workers", {})))
        queue = deque(items)
        running = as_completed(loop=self.client.loop)
        submitted = []

        def submit() -> None:
            future = self.client.submit(task, queue.popleft(), pure=False, **sent)
            submitted.append(future)
            running.add(future)

        try:
            while queue and running.count() < slots:
                submit()
            for future in running:
                yield future.result()
                if queue:
                    submit()
        finally:
            self.client.cancel([f for f in submitted if not f.done()])


# ------------------------------------------------------------------ blocks
@dataclass(frozen=True)
class _Blocks:
    """The regular blocks of the image grid that seeds, growth and labels use."""

    shape: tuple[int, int]
    side: int

    @property
    def counts(self) -> tuple[int, int]:
        return tuple(math.ceil(n / self.side) for n in self.shape)

    def rect(self, i: int, j: int) -> tuple[int, int, int, int]:
        s = self.side
        h, w = self.shape
        return i * s, min(h, (i + 1) * s), j * s, min(w, (j + 1) * s)

    def all(self) -> list[tuple[int, int]]:
        ny, nx = self.counts
        return [(i, j) for i in range(ny) for j in range(nx)]

    def near(self, i: int, j: int, reach: int) -> list[tuple[int, int]]:
        """Block ``(i, j)`` and the blocks within ``reach`` pixels of it."""
        ny, nx = self.counts
        rings = math.ceil(reach / self.side)
        return [
            (a, b)
            for a in range(max(0, i - rings), min(ny, i + rings + 1))
            for b in range(max(0, j - rings), min(nx, j + rings + 1))
        ]


@dataclass(frozen=True)
class _Parts:
    """The 4-connected components of one block of a mask, for joining blocks.

    ``areas[k]`` and ``first[k]`` are the pixel count and the raster index
    (``y * width + x`` over the whole image) of the first pixel of local
    component ``k + 1``; the edges are the local labels of the block's
    outer rows and columns.
    """

    areas: np.ndarray
    first: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray


def _parts(labels: np.ndarray, count: int, areas, origin, width: int) -> _Parts:
    """Summarise the components ``labels`` of a block whose corner is ``origin``."""
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    ids = flat[where]
    # cv2 numbers components by their first pixel in raster order, so each
    # label's first pixel is where the running maximum first reaches it
    new = np.ones(len(ids), bool)
    new[1:] = ids[1:] > np.maximum.accumulate(ids)[:-1]
    firsts = where[new]
    if not np.array_equal(ids[new], np.arange(1, count + 1)):
        _, firsts = np.unique(flat, return_index=True)
        firsts = firsts[1:] if count and flat[firsts[0]] == 0 else firsts
    ly, lx = np.divmod(firsts, labels.shape[1])
    first = (origin[0] + ly).astype(np.int64) * width + (origin[1] + lx)
    return _Parts(
        areas=np.asarray(areas[1:], np.int64),
        first=first,
        top=labels[0].copy(),
        bottom=labels[-1].copy(),
        left=labels[:, 0].copy(),
        right=labels[:, -1].copy(),
    )


@dataclass(frozen=True)
class _Joined:
    """Components joined over all blocks.

    ``offsets[b]`` numbers block ``b``'s local components globally (local
    ``k`` is node ``offsets[b] + k - 1``); ``of_node`` maps nodes to joined
    components, whose ``areas`` and ``first`` pixels are over the image.
    """

    offsets: dict[tuple[int, int], int]
    of_node: np.ndarray
    areas: np.ndarray
    first: np.ndarray

    def per_block(self, values: np.ndarray, block: tuple[int, int], count: int):
        """``values`` (one per joined component) as a lookup of local labels."""
        start = self.offsets[block]
        return np.concatenate([[0], values[self.of_node[start : start + count]]])


def _join(parts: dict[tuple[int, int], _Parts]) -> _Joined:
    """Union-find of components that touch across block faces (4-connected)."""
    offsets, total = {}, 0
    for block in sorted(parts):
        offsets[block] = total
        total += len(parts[block].areas)
    u, v = [], []

    def link(a: np.ndarray, b: np.ndarray, oa: int, ob: int) -> None:
        both = (a > 0) & (b > 0)
        u.append(a[both].astype(np.int64) + oa - 1)
        v.append(b[both].astype(np.int64) + ob - 1)

    for (i, j), p in parts.items():
        if (i, j + 1) in parts:
            link(p.right, parts[i, j + 1].left, offsets[i, j], offsets[i, j + 1])
        if (i + 1, j) in parts:
            link(p.bottom, parts[i + 1, j].top, offsets[i, j], offsets[i + 1, j])
    u = np.concatenate(u) if u else np.zeros(0, np.int64)
    v = np.concatenate(v) if v else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(u), np.int8), (u, v)), shape=(total, total))
    n, of_node = connected_components(graph, directed=False)
    areas = np.zeros(n, np.int64)
    first = np.full(n, np.iinfo(np.int64).max)
    for block, p in parts.items():
        nodes = of_node[offsets[block] : offsets[block] + len(p.areas)]
        np.add.at(areas, nodes, p.areas)
        np.minimum.at(first, nodes, p.first)
    return _Joined(offsets=offsets, of_node=of_node, areas=areas, first=first)


def _raster_ranks(first: np.ndarray, keep: np.ndarray, start: int = 1) -> np.ndarray:
    """Ids ``start, start + 1, ...`` for the kept components in raster order; 0 else."""
    ranks = np.zeros(len(first), np.int64)
    kept = np.flatnonzero(keep)
    ranks[kept[np.argsort(first[kept], kind="stable")]] = np.arange(
        start, start + len(kept)
    )
    return ranks


# ------------------------------------------------------------------ tasks
def _network_task(
    block: tuple[int, int, int, int, int, int],
    *,
    grid,
    tiles: TileGrid,
    net,
    device: str,
    value_range: tuple[float, float],
    threshold: float,
    resampling: Resampling,
    store: _BlockStore,
) -> None:
    """Run the network on a group of tiles and store the part they keep.

    On the image grid, and from an upsampled grid (each tile's kept part
    brought to its image rows and columns, as in memory): the core and
    foreground masks (bits). On a coarser working grid: the core and
    background probabilities, which :class:`_Masks` maps to the image.
    """
    bi, bj, i0, i1, j0, j1 = block
    y0, y1, x0, x1 = store.rect(bi, bj)
    on_work = resampling.scale < 1
    out = np.zeros(
        (2, y1 - y0, x1 - x0) if on_work else (y1 - y0, x1 - x0),
        np.float32 if on_work else np.uint8,
    )
    dev = torch.device(device)
    for i in range(i0, i1):
        for j in range(j0, j1):
            ty, tx, (ky0, ky1), (kx0, kx1) = tiles.tile(i, j)
            window = grid.read((ty, ty + tiles.tile_h), (tx, tx + tiles.tile_w))
            with torch.inference_mode():
                batch = as_batch(window, value_range, dev)
                probs = torch.softmax(net(batch)[0], dim=0)
                if resampling.identity:
                    masks = nucleus_masks(probs, threshold).cpu().numpy()
                else:
                    pair = probs[[CORE, BACKGROUND]].float().cpu().numpy()
            if resampling.identity:
                out[ky0 - y0 : ky1 - y0, kx0 - x0 : kx1 - x0] = _bits(
                    *masks[:, ky0 - ty : ky1 - ty, kx0 - tx : kx1 - tx]
                )
            elif on_work:
                out[:, ky0 - y0 : ky1 - y0, kx0 - x0 : kx1 - x0] = pair[
                    :, ky0 - ty : ky1 - ty, kx0 - tx : kx1 - tx
                ]
            else:
                rows = resampling.image_span(0, ky0, ky1)
                cols = resampling.image_span(1, kx0, kx1)
                if rows[0] == rows[1] or cols[0] == cols[1]:
                    continue
                core, background = (
                    resampling.tile_to_image(m, (ty, tx), rows, cols) for m in pair
                )
                out[rows[0] - y0 : rows[1] - y0, cols[0] - x0 : cols[1] - x0] = _bits(
                    core > threshold, background < defaults.FOREGROUND_BELOW
                )
    store.save(bi, bj, out)


def _bits(core: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """The core and foreground masks packed into one uint8 array."""
    return core.view(np.uint8) | foreground.view(np.uint8) * _FOREGROUND_BIT


def _seed_task(
    block: tuple[int, int], *, blocks: _Blocks, masks: _Masks, cores: str
) -> tuple[tuple[int, int], _Parts]:
    """Label the core components of a block; store them, return their summary."""
    y0, y1, x0, x1 = blocks.rect(*block)
    bits = masks.read((y0, y1), (x0, x1))
    labels, count, areas = components((bits & _CORE_BIT) > 0)
    zarr.open_array(cores, mode="r+")[y0:y1, x0:x1] = labels
    return block, _parts(labels, count, areas, (y0, x0), blocks.shape[1])


def _grow_task(
    item: tuple[tuple[int, int], dict],
    *,
    blocks: _Blocks,
    masks: _Masks,
    cores: str,
    grow: int,
    grown: str,
    orphans: str,
) -> tuple[tuple[int, int], np.ndarray, np.ndarray, _Parts]:
    """Grow the seeds of a block (with a halo of ``grow``); find its orphans.

    ``item`` is the block and, for it and its neighbours ``b``, the lookup
    from ``b``'s local core labels to global seed ids (raster order; 0: no
    seed). Stores the grown ids and the orphans' local labels; returns the
    pixel count per seed id in the block and the orphans' summary.
    """
    block, near = item
    y0, y1, x0, x1 = blocks.rect(*block)
    height, width = blocks.shape
    wy0, wy1 = max(0, y0 - grow), min(height, y1 + grow)
    wx0, wx1 = max(0, x0 - grow), min(width, x1 + grow)
    bits = masks.read((wy0, wy1), (wx0, wx1))
    local = zarr.open_array(cores, mode="r")[wy0:wy1, wx0:wx1]
    present = np.unique(np.concatenate([lut[lut > 0] for lut in near.values()]))
    # seeds renumbered 1..len(present) in the same order: the same winners
    dtype = np.uint16 if len(present) <= 0xFFFF else np.float32
    seeds = np.zeros(local.shape, dtype)
    for b, lut in near.items():
        by0, by1, bx0, bx1 = blocks.rect(*b)
        sy = slice(max(by0, wy0) - wy0, min(by1, wy1) - wy0)
        sx = slice(max(bx0, wx0) - wx0, min(bx1, wx1) - wx0)
        if sy.start >= sy.stop or sx.start >= sx.stop:
            continue
        renumber = np.where(lut > 0, np.searchsorted(present, lut) + 1, 0)
        seeds[sy, sx] = renumber.astype(dtype)[local[sy, sx]]
    grown_window = grow_seeds(seeds, (bits & _FOREGROUND_BIT) > 0, grow)
    inner = (slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0))
    ids = grown_window[inner].astype(np.intp)
    counts = np.bincount(ids.ravel(), minlength=len(present) + 1)[1:]
    target = zarr.open_array(grown, mode="r+")
    target[y0:y1, x0:x1] = np.concatenate([[0], present]).astype(target.dtype)[ids]
    lone = ((bits[inner] & _FOREGROUND_BIT) > 0) & (ids == 0)
    labels, count, areas = components(lone)
    zarr.open_array(orphans, mode="r+")[y0:y1, x0:x1] = labels
    found = counts > 0
    return (
        block,
        present[found],
        counts[found],
        _parts(labels, count, areas, (y0, x0), width),
    )


def _label_task(
    block: tuple[int, int],
    *,
    blocks: _Blocks,
    grown: str,
    orphans: str,
    seed_ids,
    orphan_ids: dict,
    out: str,
) -> None:
    """Write a block of the final labels: seeds and orphans to their ids."""
    y0, y1, x0, x1 = blocks.rect(*block)
    seeds = zarr.open_array(grown, mode="r")[y0:y1, x0:x1]
    lone = zarr.open_array(orphans, mode="r")[y0:y1, x0:x1]
    labels = seed_ids[seeds.astype(np.intp)]
    found = lone > 0
    labels[found] = orphan_ids[block][lone[found]]
    zarr.open_array(out, mode="r+")[y0:y1, x0:x1] = labels


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


def _work_task(
    block: tuple[int, int],
    *,
    resampling: Resampling,
    octave: _Image,
    work: str,
    blocks: _Blocks,
) -> None:
    y0, y1, x0, x1 = blocks.rect(*block)
    part = resampling.work_window(octave.read, (y0, y1), (x0, x1))
    zarr.open_array(work, mode="r+")[y0:y1, x0:x1] = part


def _scratch_array(path: Path, shape, dtype, side: int):
    return zarr.create_array(
        store=str(path),
        shape=tuple(shape),
        dtype=dtype,
        chunks=tuple(min(side, n) for n in shape),
    )


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))  # the cores this process may use
    return os.cpu_count() or 1


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
    ome_zarr.check_target(path, overwrite)
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

    with ome_zarr.staged_store(path, overwrite, scratch=True) as (temp, scratch):
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
