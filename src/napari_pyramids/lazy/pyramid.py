"""Lazy Gaussian and Laplacian pyramids of dask (or zarr) arrays, chunk by chunk.

Each block runs the in-memory :func:`~napari_pyramids.core.pyramid.reduce` /
:func:`~napari_pyramids.core.pyramid.expand` on the block plus a thin overlap
taken from its neighbours, so the result equals the in-memory engine (to float
round-off) everywhere, chunk borders included:

* REDUCE filters with a 5-tap kernel and keeps sample ``2j`` (Burt & Adelson
  1983). A block that starts at an even offset, extended by 2 samples from each
  neighbour, holds every input a kept sample needs; at the true array border the
  block's own mirror (``BORDER_REFLECT_101``) is the array's mirror. Chunks along
  reduced axes are therefore made even (only the last one may be odd), and the
  first kept sample of an extended block, which belongs to the left neighbour,
  is dropped.
* EXPAND of a coarse level needs 1 coarse sample from each neighbour; the
  coarse chunks are the halves of the fine chunks, so the EXPANDed blocks tile
  the fine level exactly.

dask's own ``boundary="reflect"`` is numpy's ``"symmetric"`` (the edge sample
repeated), not BORDER_REFLECT_101, so the overlap uses ``boundary="none"`` and
the in-memory kernels do the mirroring at the true borders.

References
----------
.. [1] P. J. Burt and E. H. Adelson, "The Laplacian Pyramid as a Compact Image
   Code", IEEE Trans. Communications 31(4), 532-540, 1983.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np

from napari_pyramids.core import pyramid as core
from napari_pyramids.core.checks import as_real_array, check_real
from napari_pyramids.core.pyramid import DEFAULT_A
from napari_pyramids.signatures import forwards_options

__all__ = [
    "as_dask",
    "as_float",
    "cast_lazy",
    "expand_lazy",
    "gaussian_pyramid",
    "iter_pyramid",
    "laplacian_pyramid",
    "level_chunks",
    "reduce_lazy",
    "side_chunks",
]

#: Elements per block of a reduced level when neither ``chunks`` nor the input
#: says otherwise: 1024 x 1024 in 2-D, 128**3 in 3-D (4-8 MiB of float32).
_BLOCK_ELEMENTS = {1: 1 << 20, 2: 1 << 20, 3: 1 << 21}
#: Input chunks smaller than this (per reduced side) are merged: tiny blocks make
#: huge task graphs and most of their work would be overlap.
_MIN_SIDE = 256


def as_dask(image, name: str = "image") -> da.Array:
    """Wrap ``image`` (dask, zarr or numpy) as a dask array, checking its dtype."""
    if isinstance(image, da.Array):
        arr = image
    elif type(image).__module__.split(".")[0] == "zarr":
        arr = da.from_zarr(image)
    else:  # checked here: dask cannot wrap object arrays, nor keep a mask
        arr = da.from_array(as_real_array(image, name))
    if arr.dtype == bool:  # as in memory: bool images are 0/1 floats
        arr = arr.astype(np.float32)
    check_real(arr, name)
    return arr


def side_chunks(n: int, side: int) -> tuple[int, ...]:
    """Split ``n`` samples into blocks of an even ``side`` (the last one may be odd).

    A last block of 1 sample joins its neighbour, so every block has at least the
    2 samples REDUCE's overlap borrows.
    """
    side = max(2, side + side % 2)
    if n <= side:
        return (n,)
    sizes = [side] * (n // side)
    rest = n - side * len(sizes)
    if rest == 1:
        sizes[-1] += 1
    elif rest:
        sizes.append(rest)
    return tuple(sizes)


def level_chunks(
    arr: da.Array, axes: Sequence[int], side: int | Sequence[int] | None = None
) -> tuple[tuple[int, ...], ...]:
    """Chunks for one pyramid level: even blocks of ``side`` along the reduced axes.

    ``side`` (one int, or one per reduced axis) defaults to the array's current
    block side when that is at least 256, else to about a million elements per
    block. Axes that are not reduced keep their chunks. Every level of a pyramid
    uses the same sides, so coarse levels have ever fewer blocks, down to one.
    """
    if side is None:
        default = round(_BLOCK_ELEMENTS[len(axes)] ** (1 / len(axes)))
        sides = [
            arr.chunksize[ax] if arr.chunksize[ax] >= _MIN_SIDE else default
            for ax in axes
        ]
    elif isinstance(side, (int, np.integer)):
        sides = [int(side)] * len(axes)
    else:
        sides = [int(s) for s in side]
        if len(sides) != len(axes):
            raise ValueError(
                f"chunks gives {len(sides)} block sides but the pyramid reduces "
                f"{len(axes)} axes; give one int or one side per reduced axis"
            )
    if min(sides) < 2:
        raise ValueError(f"chunk sides must be at least 2 samples, got {sides}")
    chunks = list(arr.chunks)
    for ax, s in zip(axes, sides):
        chunks[ax] = side_chunks(arr.shape[ax], s)
    return tuple(chunks)


def _crop(block: np.ndarray, starts: dict[int, int], shape: Sequence[int]):
    index = tuple(
        slice(starts.get(ax, 0), starts.get(ax, 0) + n) for ax, n in enumerate(shape)
    )
    return block[index]


def _reduce_block(block, *, axes, a, channel_axis, reduce_z, backend, block_info):
    """REDUCE one overlapped block and drop what belongs to its neighbours."""
    out = core.reduce(
        block, a=a, channel_axis=channel_axis, reduce_z=reduce_z, backend=backend
    )
    location = block_info[0]["chunk-location"]
    # A block with a left neighbour starts 2 samples early: its first kept sample
    # is the neighbour's last one.
    starts = {ax: 1 for ax in axes if location[ax] > 0}
    return _crop(out, starts, block_info[None]["chunk-shape"])


def reduce_lazy(
    arr: da.Array,
    *,
    a: float = DEFAULT_A,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    backend: str = "auto",
) -> da.Array:
    """One lazy REDUCE step of a float dask array, equal to :func:`core.reduce`.

    Blocks along the reduced axes are made even first (a no-op for the levels
    :func:`gaussian_pyramid` makes). The result has ``ceil(c / 2)`` per block.
    """
    axes = core.spatial_axes(arr.ndim, channel_axis=channel_axis, reduce_z=reduce_z)
    chunks = list(arr.chunks)
    for ax in axes:
        if any(c % 2 for c in chunks[ax][:-1]) or min(chunks[ax]) < 2:
            chunks[ax] = side_chunks(arr.shape[ax], max(chunks[ax]))
    arr = arr.rechunk(tuple(chunks))
    depth = {ax: (2 if ax in axes and len(arr.chunks[ax]) > 1 else 0) for ax in axes}
    padded = da.overlap.overlap(
        arr, depth=depth, boundary=dict.fromkeys(axes, "none"), allow_rechunk=False
    )
    out_chunks = tuple(
        tuple((c + 1) // 2 for c in arr.chunks[ax]) if ax in axes else arr.chunks[ax]
        for ax in range(arr.ndim)
    )
    return da.map_blocks(
        _reduce_block,
        padded,
        chunks=out_chunks,
        dtype=arr.dtype,
        axes=axes,
        a=a,
        channel_axis=channel_axis,
        reduce_z=reduce_z,
        backend=backend,
    )


def _expand_block(block, *, axes, a, backend, block_info):
    """EXPAND one overlapped coarse block to its fine block."""
    location = block_info[0]["chunk-location"]
    n_chunks = block_info[0]["num-chunks"]
    fine = block_info[None]["chunk-shape"]
    # Fine block of f samples, plus 2 fine samples per coarse overlap sample.
    left = {ax: 1 if location[ax] > 0 else 0 for ax in axes}
    right = {ax: 1 if location[ax] < n_chunks[ax] - 1 else 0 for ax in axes}
    target = [
        2 * left[ax] + fine[ax] + 2 * right[ax] if ax in axes else block.shape[ax]
        for ax in range(block.ndim)
    ]
    out = core.expand(block, target, a=a, backend=backend)
    return _crop(out, {ax: 2 * left[ax] for ax in axes}, fine)


def expand_lazy(
    arr: da.Array,
    shape: Sequence[int],
    chunks: Sequence[Sequence[int]],
    *,
    axes: Sequence[int],
    a: float = DEFAULT_A,
    backend: str = "auto",
) -> da.Array:
    """Lazy EXPAND of ``arr`` to ``shape`` in ``chunks``, equal to :func:`core.expand`.

    ``chunks`` is the chunking of the finer level (even blocks along ``axes``,
    the last one may be odd); the result comes out in exactly those chunks, so it
    lines up block for block with the finer level.
    """
    coarse = list(arr.chunks)
    for ax in axes:
        halves = [c // 2 for c in chunks[ax][:-1]]
        coarse[ax] = (*halves, arr.shape[ax] - sum(halves))
    arr = arr.rechunk(tuple(coarse))
    depth = {ax: (1 if len(arr.chunks[ax]) > 1 else 0) for ax in axes}
    padded = da.overlap.overlap(
        arr, depth=depth, boundary=dict.fromkeys(axes, "none"), allow_rechunk=False
    )
    out_chunks = tuple(
        tuple(chunks[ax]) if ax in axes else arr.chunks[ax] for ax in range(arr.ndim)
    )
    if tuple(sum(c) for c in out_chunks) != tuple(shape):
        raise ValueError(
            f"chunks {tuple(chunks)} do not add up to shape {tuple(shape)}"
        )
    return da.map_blocks(
        _expand_block,
        padded,
        chunks=out_chunks,
        dtype=arr.dtype,
        axes=axes,
        a=a,
        backend=backend,
    )


def as_float(arr: da.Array) -> da.Array:
    """``arr`` in the float dtype the in-memory engine computes it in."""
    return arr.astype(core.float_dtype(arr.dtype))


def cast_lazy(level: da.Array, dtype) -> da.Array:
    """``level`` cast block by block to ``dtype`` as the in-memory engine casts."""
    dtype = np.dtype(dtype)
    if level.dtype == dtype:
        return level
    return level.map_blocks(core.cast_like, dtype, dtype=dtype)


def gaussian_pyramid(
    image,
    levels: int | None = None,
    *,
    a: float = DEFAULT_A,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = core.DEFAULT_MIN_SIZE,
    preserve_dtype: bool = False,
    backend: str = "auto",
    chunks: int | Sequence[int] | None = None,
) -> list[da.Array]:
    """Lazy Gaussian pyramid of a dask or zarr array (or anything array-like).

    Same parameters and results as :func:`napari_pyramids.gaussian_pyramid`, but
    every level is a dask array: nothing is computed until asked (``.compute()``,
    :func:`dask.array.store`, :func:`napari_pyramids.write_ome_zarr`), and a
    running ``dask.distributed`` Client computes it on its cluster.

    Parameters
    ----------
    chunks : int or sequence of int, optional
        Block side along the reduced axes (the same for every level, clipped to the
        level); see :func:`level_chunks` for the default.

    Notes
    -----
    NaN and infinite values are not looked for up front (that would read the
    whole image): computing a block that holds them raises the in-memory
    engine's ValueError.
    """
    arr = as_dask(image)
    a = core.check_a(a)
    axes, n_levels = core.pyramid_plan(
        arr.shape,
        levels,
        channel_axis=channel_axis,
        reduce_z=reduce_z,
        min_size=min_size,
    )
    kw = dict(a=a, channel_axis=channel_axis, reduce_z=reduce_z, backend=backend)
    work = as_float(arr)
    work = work.rechunk(level_chunks(work, axes, chunks))
    pyramid = [work]
    for _ in range(n_levels - 1):
        reduced = reduce_lazy(pyramid[-1], **kw)
        side = [work.chunks[ax][0] for ax in axes]
        pyramid.append(reduced.rechunk(level_chunks(reduced, axes, side)))
    if preserve_dtype:
        pyramid = [arr] + [cast_lazy(level, arr.dtype) for level in pyramid[1:]]
    return pyramid


def laplacian_pyramid(
    image,
    levels: int | None = None,
    *,
    a: float = DEFAULT_A,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = core.DEFAULT_MIN_SIZE,
    backend: str = "auto",
    chunks: int | Sequence[int] | None = None,
) -> list[da.Array]:
    """Lazy Laplacian pyramid: bands ``G_k - EXPAND(G_{k+1})`` plus the residual.

    Same parameters and results as :func:`napari_pyramids.laplacian_pyramid`, as
    dask arrays; each band has the chunks of its Gaussian level.
    """
    gauss = gaussian_pyramid(
        image,
        levels,
        a=a,
        channel_axis=channel_axis,
        reduce_z=reduce_z,
        min_size=min_size,
        backend=backend,
        chunks=chunks,
    )
    axes = core.spatial_axes(
        gauss[0].ndim, channel_axis=channel_axis, reduce_z=reduce_z
    )
    bands = [
        fine
        - expand_lazy(coarse, fine.shape, fine.chunks, axes=axes, a=a, backend=backend)
        for fine, coarse in zip(gauss[:-1], gauss[1:])
    ]
    return bands + [gauss[-1]]


@forwards_options(laplacian_pyramid)
def iter_pyramid(
    image,
    levels: int | None = None,
    *,
    kind: str = "gaussian",
    preserve_dtype: bool = False,
    **options,
):
    """The lazy levels of a Gaussian or Laplacian pyramid, one by one.

    The out-of-core twin of :func:`napari_pyramids.core.pyramid.iter_pyramid`
    (same arguments, checked at call time, plus ``chunks``): building the lazy
    levels computes nothing, so they are all made here and handed out in order.
    """
    core.check_kind(kind, preserve_dtype)
    if kind == "laplacian":
        return iter(laplacian_pyramid(image, levels, **options))
    return iter(
        gaussian_pyramid(image, levels, preserve_dtype=preserve_dtype, **options)
    )
