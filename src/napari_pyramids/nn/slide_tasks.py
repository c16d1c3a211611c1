"""The per-block work of the whole-slide path, and where it runs.

Each task reads its block (with the halo it needs) from the scratch arrays,
computes what the in-memory path computes for those pixels and writes or
returns it: the network's masks for a group of tiles, the seeds and the
growth of a block, its final labels. :class:`_Runner` runs them on local
threads or, when a ``dask.distributed`` scheduler is given, on its workers.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import zarr

from . import defaults
from .instances import components, grow_seeds
from .rescale import Resampling
from .slide_blocks import _Blocks, _Parts, _parts
from .slide_store import _CORE_BIT, _FOREGROUND_BIT, _bits, _BlockStore, _Image, _Masks
from .synthetic import BACKGROUND, CORE
from .tiling import TileGrid, as_batch, nucleus_masks


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


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))  # the cores this process may use
    return os.cpu_count() or 1


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
