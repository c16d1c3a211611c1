"""Stacks of planes: one id per nucleus through z, and through time when linked.

The network segments 2-D planes. A z-stack's planes are segmented one by one
and neighbouring planes' nuclei that overlap by IoU >= ``stitch_threshold``
get one id (cellpose's ``stitch_threshold``); a time-lapse's frames are
segmented one by one and, with ``link``, a nucleus keeps its id from one
frame to the next where the overlap is large enough. Matching is one to one
(Hungarian on IoU), so two nuclei never merge into one id.

numpy and scipy only: the 2-D segmentation is handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np
from scipy.optimize import linear_sum_assignment

from .metrics import instance_overlaps

__all__ = ["AXES", "check_axes", "link_ids", "middle_plane", "segment_stack_steps"]

#: The stack layouts :func:`segment_stack_steps` takes.
AXES = ("yx", "zyx", "tyx", "tzyx")


def check_axes(axes: str | None, ndim: int) -> str:
    """The axes string for an image of ``ndim`` dimensions (None: yx or zyx)."""
    if axes is None:
        if ndim == 2:
            return "yx"
        if ndim == 3:
            return "zyx"
        hint = "; a 4-D stack needs axes='tzyx'" if ndim == 4 else ""
        raise ValueError(
            f"expected a 2-D image (H, W) or a stack of them with its axes "
            f"({', '.join(AXES[1:])}), got {ndim} dimensions{hint}"
        )
    axes = str(axes).lower()
    if axes not in AXES:
        raise ValueError(f"axes must be one of {AXES}, got {axes!r}")
    if len(axes) != ndim:
        raise ValueError(
            f"axes {axes!r} names {len(axes)} dimensions, the image has {ndim}"
        )
    return axes


def middle_plane(stack: np.ndarray) -> np.ndarray:
    """The middle (y, x) plane of a stack: where a stack's nucleus size is read."""
    planes = stack.reshape(-1, *stack.shape[-2:])
    return planes[len(planes) // 2]


def _match(previous: np.ndarray, current: np.ndarray, threshold: float):
    """Pairs (previous id, current id) of one-to-one matches with IoU >= threshold."""
    prev_ids = np.unique(previous)
    prev_ids = prev_ids[prev_ids > 0]
    curr_ids = np.unique(current)
    curr_ids = curr_ids[curr_ids > 0]
    if not len(prev_ids) or not len(curr_ids):
        return []
    _, iou, _, _ = instance_overlaps(previous, current)
    # the assignment runs only over nuclei with a partner above the threshold
    rows = np.flatnonzero((iou >= threshold).any(axis=1))
    cols = np.flatnonzero((iou >= threshold).any(axis=0))
    if not len(rows):
        return []
    sub = iou[np.ix_(rows, cols)]
    r, c = linear_sum_assignment(-sub)
    keep = sub[r, c] >= threshold
    return list(zip(prev_ids[rows[r[keep]]], curr_ids[cols[c[keep]]], strict=True))


def link_ids(stack: np.ndarray, threshold: float) -> np.ndarray:
    """Renumber a stack of label images so overlapping nuclei share an id.

    ``stack`` is (n, ...) label images whose ids are independent per item;
    item ``k``'s nuclei take the id of the item ``k - 1`` nucleus they overlap
    with IoU >= ``threshold`` (one to one), or a new id. Returns uint32 (or
    uint64) labels; the input is not modified.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"the overlap threshold must be in (0, 1], got {threshold}")
    out = np.zeros(stack.shape, np.uint64)
    next_id = 1
    previous = None
    for k, item in enumerate(stack):
        ids = np.unique(item)
        ids = ids[ids > 0]
        lookup = {}
        if previous is not None:
            for old, new in _match(previous, item, threshold):
                lookup[int(new)] = int(old)
        mapping = np.zeros(int(item.max(initial=0)) + 1, np.uint64)
        for value in ids:
            value = int(value)
            if value in lookup:
                mapping[value] = lookup[value]
            else:
                mapping[value] = next_id
                next_id += 1
        out[k] = mapping[item]
        previous = out[k]
    dtype = np.uint32 if next_id <= np.iinfo(np.uint32).max else np.uint64
    return out.astype(dtype)


def segment_stack_steps(
    image: np.ndarray,
    axes: str,
    segment_plane: Callable[[np.ndarray], np.ndarray],
    *,
    stitch_threshold: float = 0.25,
    link: bool = False,
    link_threshold: float = 0.25,
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Segment every 2-D plane of ``image`` and join the ids; yields per plane.

    ``segment_plane(plane) -> labels`` segments one (y, x) plane. On "zyx"
    planes are stitched through z; on "tyx" frames are linked through time
    when ``link``; on "tzyx" each time point is stitched through z and the
    volumes are linked when ``link``. Without ``link``, each frame's ids are
    its own. Returns labels of the image's shape.
    """
    axes = check_axes(axes, image.ndim)
    if axes == "yx":
        yield 0, 1
        labels = segment_plane(image)
        yield 1, 1
        return labels
    planes = image.reshape(-1, *image.shape[-2:])
    total = len(planes)
    yield 0, total
    found = []
    for i, plane in enumerate(planes):
        found.append(segment_plane(plane))
        yield i + 1, total
    labels = np.stack(found).reshape(image.shape)
    if "z" in axes:
        frames = labels.reshape(-1, *image.shape[-3:])
        frames = np.stack([link_ids(volume, stitch_threshold) for volume in frames])
        labels = frames.reshape(image.shape)
    if "t" in axes and link:
        labels = link_ids(labels, link_threshold)
    return labels
