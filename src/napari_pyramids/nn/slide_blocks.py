"""The blocks of a slide and the seams between them.

:class:`_Blocks` is the grid of blocks; :func:`_parts` lists the connected
parts of one block with their areas, first pixels and the labels on its
faces; :func:`_join` unites the parts that touch across block faces
(union-find by a sparse graph's connected components), so a nucleus cut by
block borders is one part with its whole area and its first pixel in raster
order over the whole image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


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
