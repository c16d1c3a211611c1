"""What the whole-slide path reads and keeps on disk: the image (a zarr or
dask array, read window by window, or upsampled on the fly), the scratch
arrays of the network's masks, and the core and foreground bits of each block.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

from . import defaults
from .rescale import Resampling

#: Bits of the stored masks.
_CORE_BIT, _FOREGROUND_BIT = 1, 2


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


def _bits(core: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """The core and foreground masks packed into one uint8 array."""
    return core.view(np.uint8) | foreground.view(np.uint8) * _FOREGROUND_BIT


def _scratch_array(path: Path, shape, dtype, side: int):
    return zarr.create_array(
        store=str(path),
        shape=tuple(shape),
        dtype=dtype,
        chunks=tuple(min(side, n) for n in shape),
    )
