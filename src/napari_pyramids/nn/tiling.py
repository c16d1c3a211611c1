"""Tiles of the working image: cut with overlap, run through the network,
the kept parts written back.

Each tile keeps only its centre (the overlap is split half and half between
neighbours, so every kept pixel has at least ``overlap / 2`` pixels of real
context), and the kept parts are written into the full-size result: bounded
memory for any image size, no seams. The same :class:`TileGrid` serves the
in-memory and the whole-slide paths, so both get the same masks.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from . import defaults
from .context import _Grid, _pinned_image_pooling
from .model import CompactDeepLab
from .normalize import normalize
from .synthetic import BACKGROUND, CORE

__all__ = ["TileGrid", "check_tiling"]


def _tile_starts(length: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """Evenly spaced tile starts covering ``length``, and the tile length used."""
    if length <= tile:
        return [0], length
    count = math.ceil((length - overlap) / (tile - overlap))
    size = min(
        tile, math.ceil(math.ceil((length - overlap) / count + overlap) / 16) * 16
    )
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
    return starts, size


def _kept(starts: list[int], size: int, length: int) -> list[tuple[int, int]]:
    """The part of each tile it writes: up to the middle of each overlap."""
    cuts = (
        [0] + [(s + prev + size) // 2 for prev, s in zip(starts, starts[1:])] + [length]
    )
    return list(zip(cuts, cuts[1:]))


def check_tiling(tile_size: int, overlap: int, context_size: int) -> None:
    """Raise a ValueError unless the tile geometry is one the tiling can use."""
    if tile_size < 32 or not 0 <= overlap <= tile_size // 2:
        raise ValueError(
            "need tile_size >= 32 and 0 <= overlap <= tile_size / 2, "
            f"got {tile_size}, {overlap}"
        )
    if context_size < 32:
        raise ValueError(
            f"context_size must be at least 32 pixels (the image-pooling view), "
            f"got {context_size}"
        )


Tile = tuple[int, int, tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class TileGrid:
    """The fixed tiles of a grid: starts and kept spans per axis, tile sides.

    Tile ``(i, j)`` starts at ``(ys[i], xs[j])``, is ``tile_h`` x ``tile_w``
    and keeps ``keep_y[i]`` x ``keep_x[j]`` (up to the middle of each
    overlap): the same tiles for any caller, so the same masks.
    """

    ys: list[int]
    xs: list[int]
    tile_h: int
    tile_w: int
    keep_y: list[tuple[int, int]]
    keep_x: list[tuple[int, int]]

    @classmethod
    def for_shape(cls, shape: tuple[int, int], tile: int, overlap: int) -> TileGrid:
        height, width = shape
        ys, tile_h = _tile_starts(height, tile, overlap)
        xs, tile_w = _tile_starts(width, tile, overlap)
        return cls(
            ys, xs, tile_h, tile_w, _kept(ys, tile_h, height), _kept(xs, tile_w, width)
        )

    def tile(self, i: int, j: int) -> Tile:
        return (self.ys[i], self.xs[j], self.keep_y[i], self.keep_x[j])

    def pins_pooling(self, context_size: int) -> bool:
        """False when one tile sees the whole grid (it pools what pinning would)."""
        height, width = self.keep_y[-1][1], self.keep_x[-1][1]
        return len(self.ys) * len(self.xs) > 1 or max(height, width) > context_size


def as_batch(
    array: np.ndarray, value_range: tuple[float, float], device: torch.device
) -> torch.Tensor:
    """A normalised tile (or view) as the network's (1, C, H, W) input."""
    memory_format = (
        torch.channels_last if device.type == "cpu" else torch.contiguous_format
    )
    batch = torch.from_numpy(normalize(array, value_range)).reshape(
        1, -1, *array.shape[-2:]
    )
    return batch.to(device=device, memory_format=memory_format)


def nucleus_masks(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """The core (seed) and foreground masks of one tile's class probabilities."""
    return torch.stack(
        [probs[CORE] > threshold, probs[BACKGROUND] < defaults.FOREGROUND_BELOW]
    )


def _run_tiled(
    grid: _Grid,
    net: CompactDeepLab,
    device: torch.device,
    tile_fn: Callable[[torch.Tensor], dict[str, np.ndarray]],
    write: Callable[[Tile, dict[str, np.ndarray]], None],
    *,
    tile_size: int,
    overlap: int,
    context_size: int,
) -> Generator[tuple[int, int], None, None]:
    """Run ``tile_fn`` on normalised tiles of ``grid``; hand each result to ``write``.

    ``write((y0, x0, (ky0, ky1), (kx0, kx1)), maps)`` gets the tile's origin
    and the grid rows and columns it keeps (up to the middle of each
    overlap), in tile order.
    """
    check_tiling(tile_size, overlap, context_size)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return as_batch(array, grid.value_range, device)

    tile_grid = TileGrid.for_shape(grid.shape, tile_size, overlap)
    tiles = [
        tile_grid.tile(i, j)
        for i in range(len(tile_grid.ys))
        for j in range(len(tile_grid.xs))
    ]

    def run(tile) -> dict[str, np.ndarray]:
        y0, x0 = tile[:2]
        array = grid.read((y0, y0 + tile_grid.tile_h), (x0, x0 + tile_grid.tile_w))
        with torch.inference_mode():  # thread-local: entered in the worker
            return tile_fn(tensor(array))

    total = len(tiles)
    yield 0, total
    with (
        _pinned_image_pooling(net, tensor(grid.coarse(context_size)))
        if tile_grid.pins_pooling(context_size)
        else nullcontext(),
        _tile_workers(device, total) as workers,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        in_flight: deque = deque()  # (tile, future), in tile order
        try:
            for done in range(1, total + 1):
                # keep every worker busy and one more tile queued
                while tiles and len(in_flight) <= workers:
                    tile = tiles.pop(0)
                    in_flight.append((tile, pool.submit(run, tile)))
                tile, future = in_flight.popleft()
                write(tile, future.result())
                yield done, total
        finally:  # closed early (cancel): drop the tiles not started yet
            for _, future in in_flight:
                future.cancel()


def _write_into(outs: dict[str, np.ndarray]) -> Callable[[Tile, dict], None]:
    """A ``write`` for :func:`_run_tiled` that copies kept parts into ``outs``."""

    def write(tile: Tile, maps: dict[str, np.ndarray]) -> None:
        y0, x0, (ky0, ky1), (kx0, kx1) = tile
        for key, out in outs.items():
            out[..., ky0:ky1, kx0:kx1] = maps[key][
                ..., ky0 - y0 : ky1 - y0, kx0 - x0 : kx1 - x0
            ]

    return write


@contextmanager
def _tile_workers(device: torch.device, n_tiles: int) -> Iterator[int]:
    """How many tiles run at once: on the CPU, up to one per torch thread.

    The small convolutions of this network scale poorly across threads inside
    one operation (two intra-op threads cost about twice the CPU time of one
    for the same tile), so tiles run side by side (the GIL is released inside
    torch) and torch's threads are shared out among them; torch's thread count
    is restored afterwards.
    """
    threads = torch.get_num_threads()
    workers = min(threads, n_tiles) if device.type == "cpu" else 1
    if workers == 1:
        yield 1
        return
    torch.set_num_threads(threads // workers)
    try:
        yield workers
    finally:
        torch.set_num_threads(threads)
