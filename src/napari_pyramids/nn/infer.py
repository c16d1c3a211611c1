"""Tiled inference: image in, nuclei instance labels (or ASPP branch maps) out.

The image is cut into overlapping tiles, each tile keeps only its centre (the
overlap is split half and half between neighbours, so every kept pixel has at
least ``overlap / 2`` pixels of real context), and the kept parts are written
into the full-size result: bounded memory for any image size, no seams.

ASPP's image-pooling branch summarises its whole input, so per tile it would
differ and leave seams. It is computed once, before the tiles, from the whole
image (block-averaged to at most ``context_size`` pixels on its long side,
i.e. exactly the whole image up to that size) and pinned for every tile.

Long runs report progress and can be cancelled between tiles, committing
nothing: :func:`segment_steps` is a generator that yields ``(done, total)``
per tile (for napari's generator thread workers), and :func:`segment` takes
``progress`` and ``cancel`` callbacks.
"""

from __future__ import annotations

import copy
import math
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..core.checks import check_finite
from ..progress import Cancel, Cancelled, Progress, drain, drive, function_form
from ..signatures import forwards_options
from .aspp import ASPPPooling
from .data import nucleus_diameter
from .defaults import (
    CONTEXT_SIZE,
    CORE_THRESHOLD,
    ESTIMATE_WINDOW,
    FOREGROUND_BELOW,
    GROW,
    MIN_SEED,
    MIN_SIZE,
    OVERLAP,
    RESCALE_TOLERANCE,
    SIZE_AGREEMENT,
    TILE_SIZE,
    check_threshold,
)
from .instances import instances_from_masks
from .model import CompactDeepLab
from .normalize import normalize, percentile_range
from .rescale import TRAINED_DIAMETER, Resampling, area_average
from .stacks import check_axes, middle_plane, segment_stack_steps
from .synthetic import BACKGROUND, CLASS_NAMES, CORE
from .weights import load_model

__all__ = [
    "CORE_THRESHOLD",
    "FOREGROUND_BELOW",
    "RESCALE_TOLERANCE",
    "Prediction",
    "SegmentationCancelled",
    "aspp_branch_responses",
    "available_devices",
    "estimate_diameter",
    "predict_steps",
    "resolve_device",
    "segment",
    "segment_steps",
    "working_scale",
]

ModelLike = str | Path | CompactDeepLab
Steps = Generator[tuple[int, int], None, np.ndarray]


class SegmentationCancelled(Cancelled):
    """Raised by :func:`segment` when ``cancel()`` returned True; nothing returned."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; others go to torch.

    A device torch cannot use here (``"cuda"`` on a machine without CUDA) is a
    ValueError that lists the ones it can.
    """
    found = available_devices()
    if str(device) != "auto":
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"unknown device {device!r}; use one of {found}") from exc
        if chosen.type not in found:
            raise ValueError(
                f"device {device!r} is not available on this machine; use one of "
                f"{found}"
            )
        return chosen
    return torch.device(next((d for d in ("cuda", "mps") if d in found), "cpu"))


def available_devices() -> list[str]:
    """``"auto"``, ``"cpu"`` and whichever of ``"cuda"`` and ``"mps"`` torch can use."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def _as_model(model: ModelLike) -> CompactDeepLab:
    """The model itself, or the one a name or path loads; checks its classes."""
    if isinstance(model, nn.Module) and not isinstance(model, CompactDeepLab):
        raise TypeError(
            f"expected a CompactDeepLab (see load_model), got {type(model).__name__}"
        )
    net = model if isinstance(model, CompactDeepLab) else load_model(model)
    if net.num_classes != len(CLASS_NAMES):
        raise ValueError(
            f"the model predicts {net.num_classes} classes; nucleus segmentation "
            f"needs the {len(CLASS_NAMES)} classes {CLASS_NAMES}"
        )
    return net


def _inference_copy(model: CompactDeepLab, device: torch.device) -> CompactDeepLab:
    """An eval-mode copy with every conv+BN pair folded into one conv.

    Folding is exact in eval mode and saves a pass over every feature map;
    module names (``classifier.0.convs.N``) are kept for hooks. The caller's
    model is left untouched.
    """
    net = copy.deepcopy(model).eval()
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, bn = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module[i], module[i + 1] = (
                        fuse_conv_bn_eval(conv, bn),
                        nn.Identity(),
                    )
    memory_format = (
        torch.channels_last if device.type == "cpu" else torch.contiguous_format
    )
    return net.to(device=device, memory_format=memory_format)


def _check_image(
    image: np.ndarray, channels: int, channel_axis: int | None
) -> np.ndarray:
    """Validate and return a (H, W) view (one-channel model) or (C, H, W) view."""
    image = np.asarray(image)
    if image.dtype == bool or image.dtype.kind not in "uif":
        raise ValueError(f"image must be integer or float, got dtype {image.dtype}")
    if channel_axis is not None:
        if image.ndim != 3:
            raise ValueError(
                f"channel_axis given but image has {image.ndim} dims, expected 3"
            )
        image = np.moveaxis(image, channel_axis, 0)
        if image.shape[0] != channels:
            raise ValueError(
                f"the model takes {channels} channel(s), the image has "
                f"{image.shape[0]} on channel_axis={channel_axis}; pick the nuclear "
                "stain channel, e.g. "
                f"np.take(image, c, axis={channel_axis})"
            )
        if channels == 1:
            image = image[0]
    elif channels > 1:
        raise ValueError(f"the model takes {channels} channels: pass channel_axis")
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        raise ValueError(
            f"image of shape {image.shape} looks like RGB(A) but the model takes one "
            "channel: pass the nuclear stain channel, e.g. image[..., 2] for blue "
            "DAPI, or give channel_axis=-1 with a one-channel image"
        )
    if image.ndim != (2 if channels == 1 else 3):
        raise ValueError(
            f"expected one 2-D image (H, W), got shape {image.shape}; for a stack "
            "give segment() its axes ('zyx', 'tyx', 'tzyx'), or pass channel_axis "
            "for channels"
        )
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    check_finite(image)
    return image


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


#: Dtypes cv2.resize takes directly.
_CV_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.float32, np.float64))


def _view_dtype(dtype: np.dtype) -> type:
    """float64 for float64 images (values may lie beyond float32), else float32."""
    return np.float64 if dtype == np.float64 else np.float32


@dataclass(frozen=True)
class _Grid:
    """The grid the network runs on: its shape, tiles and a whole-image view.

    ``read(rows, cols)`` returns a tile; ``coarse(size)`` the whole grid
    block-averaged to at most ``size`` pixels on its long side (what the
    image-pooling branch sees); ``value_range`` normalises both.
    """

    shape: tuple[int, int]
    read: Callable[[tuple[int, int], tuple[int, int]], np.ndarray]
    coarse: Callable[[int], np.ndarray]
    value_range: tuple[float, float]


#: Pixels per band of :func:`coarse_view` (a float64 copy of a band at a time).
_BAND_PIXELS = 1 << 22


def coarse_view(
    read_rows: Callable[[tuple[int, int]], np.ndarray],
    shape: tuple[int, int],
    size: int,
    dtype: np.dtype,
) -> np.ndarray:
    """A grid block-averaged to at most ``size`` pixels on its long side.

    ``read_rows((y0, y1))`` returns those rows of the grid (all columns; any
    leading channel axis). Blocks of ``factor`` x ``factor`` pixels (the
    remainder rows and columns dropped) are summed in float64 in a fixed
    order, band by band, so the view costs a band of memory, does not depend
    on the banding, and is the same for an image in memory and one read from
    disk. float32, or float64 for float64 grids (:func:`_view_dtype`).
    """
    height, width = shape
    factor = max(1, math.ceil(max(height, width) / size))
    fy, fx = min(factor, height), min(factor, width)
    hc, wc = height // fy, width // fx
    per_band = max(1, _BAND_PIXELS // (fy * width))  # block rows per band
    parts = []
    for r0 in range(0, hc, per_band):
        r1 = min(hc, r0 + per_band)
        band = np.asarray(read_rows((r0 * fy, r1 * fy)))[..., : wc * fx]
        blocks = band.astype(np.float64).reshape(*band.shape[:-2], r1 - r0, fy, wc, fx)
        parts.append(blocks.sum(axis=-1).sum(axis=-2) / (fy * fx))
    return np.concatenate(parts, axis=-2).astype(_view_dtype(np.dtype(dtype)))


def _array_grid(array: np.ndarray) -> _Grid:
    """A grid that is an array in memory (the image, or a coarser octave)."""
    return _Grid(
        shape=array.shape[-2:],
        read=lambda rows, cols: array[..., rows[0] : rows[1], cols[0] : cols[1]],
        coarse=lambda size: coarse_view(
            lambda rows: array[..., rows[0] : rows[1], :],
            array.shape[-2:],
            size,
            array.dtype,
        ),
        value_range=percentile_range(array),
    )


def upsampled_view(
    read_rows: Callable[[tuple[int, int]], np.ndarray],
    dtype: np.dtype,
    resampling: Resampling,
    size: int,
) -> np.ndarray:
    """The image-pooling view of an upsampled working grid, from the image.

    The working grid's shape divided by the integer factor that brings its
    long side to at most ``size``, area-averaged from the image itself
    (:func:`.rescale.area_average`, band by band: no full-size float copy,
    and the same for an image read from disk). An image smaller than that
    view (at most ``size`` pixels on its long side) is enlarged by OpenCV's
    ``INTER_AREA`` whole.
    """
    height, width = resampling.work_shape
    factor = max(1, math.ceil(max(height, width) / size))
    shape = (max(1, height // factor), max(1, width // factor))
    if shape[0] <= resampling.shape[0] and shape[1] <= resampling.shape[1]:
        view = area_average(read_rows, resampling.shape, shape)
    else:
        image = np.asarray(read_rows((0, resampling.shape[0])))
        source = image if image.dtype in _CV_DTYPES else image.astype(np.float32)
        view = cv2.resize(source, shape[::-1], interpolation=cv2.INTER_AREA)
    return view.astype(_view_dtype(np.dtype(dtype)), copy=False)


def _upsampled_grid(image: np.ndarray, resampling: Resampling) -> _Grid:
    """The working grid of an upsampling, made tile by tile from the image."""
    return _Grid(
        shape=resampling.work_shape,
        read=lambda rows, cols: resampling.work_tile(image, rows, cols),
        coarse=lambda size: upsampled_view(
            lambda rows: image[rows[0] : rows[1]], image.dtype, resampling, size
        ),
        value_range=percentile_range(image),
    )


def pooled_vectors(net: CompactDeepLab, batch: torch.Tensor) -> list[torch.Tensor]:
    """The image-pooling vectors of ``batch`` (the whole image's coarse view)."""
    with torch.inference_mode():
        *_, features = net.backbone(net.pad_to_stride(batch))
        return [pool.pool(features) for pool in _pools(net)]


def pin_image_pooling(net: CompactDeepLab, vectors: list[torch.Tensor] | None) -> None:
    """Pin the image-pooling branches to ``vectors`` (None: unpin)."""
    for pool, vector in zip(_pools(net), vectors or repeat(None)):
        pool.fixed = vector


def _pools(net: CompactDeepLab) -> list[ASPPPooling]:
    return [m for m in net.modules() if isinstance(m, ASPPPooling)]


@contextmanager
def _pinned_image_pooling(net: CompactDeepLab, batch: torch.Tensor) -> Iterator[None]:
    """Compute the image-pooling vectors once from the whole image and pin them."""
    pin_image_pooling(net, pooled_vectors(net, batch))
    try:
        yield
    finally:
        pin_image_pooling(net, None)


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
    return torch.stack([probs[CORE] > threshold, probs[BACKGROUND] < FOREGROUND_BELOW])


Tile = tuple[int, int, tuple[int, int], tuple[int, int]]


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


@dataclass(frozen=True)
class Prediction:
    """Everything one tiled pass of :func:`predict_steps` produced.

    Attributes
    ----------
    labels : ndarray (H, W)
        Nucleus instance labels, 0 for background, smallest unsigned dtype.
    probabilities : dict of str to ndarray
        Per-class probabilities (``"background"``, ``"core"``,
        ``"rim"``), float32 (H, W); empty unless asked for.
    branches : dict of str to ndarray
        ASPP branch responses as in :func:`aspp_branch_responses`; empty
        unless asked for.
    device : str
        The device the network actually ran on (``"cpu"``, ``"cuda:0"``...).
    diameter : float
        The nucleus diameter (image pixels) the image was segmented for.
    estimated : bool
        Whether ``diameter`` was estimated (:func:`estimate_diameter`).
    resampling : Resampling
        How the image was brought to the trained nucleus size: its
        ``scale``, ``octaves`` (REDUCE steps) and working shape.
    """

    labels: np.ndarray
    probabilities: dict[str, np.ndarray]
    branches: dict[str, np.ndarray]
    device: str
    diameter: float = TRAINED_DIAMETER
    estimated: bool = False
    resampling: Resampling | None = None


def _branch_capture(net: CompactDeepLab) -> tuple[list, Callable[[], torch.Tensor]]:
    """Forward hooks on every ASPP branch, and a function returning their maps.

    The maps are each branch's channel mean (post-ReLU: how much it responds),
    stacked as (1, n_branches, h, w) at the output stride.
    """
    captured = threading.local()  # tiles run on several threads at once
    hooks = [
        branch.register_forward_hook(
            lambda _m, _i, out, i=i: captured.__dict__.__setitem__(i, out)
        )
        for i, branch in enumerate(net.aspp.convs)
    ]

    def maps() -> torch.Tensor:
        return torch.cat(
            [captured.__dict__[i].mean(dim=1, keepdim=True) for i in range(len(hooks))],
            1,
        )

    return hooks, maps


def _check_diameter(diameter: float, shape: tuple[int, int]) -> float:
    try:
        value = float(diameter)
    except (TypeError, ValueError):
        raise TypeError(
            f"diameter must be a number of pixels or None, got {diameter!r}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"diameter must be a positive number of pixels (or None to estimate "
            f"it), got {diameter}"
        )
    if value > max(shape):
        raise ValueError(
            f"diameter {value:g} px is larger than the image {tuple(shape)}; give "
            "the typical nucleus diameter in pixels of this image"
        )
    return value


def working_scale(diameter: float) -> float:
    """The resampling factor for nuclei of ``diameter`` px (1 within tolerance).

    Nuclei within :data:`RESCALE_TOLERANCE` of the trained diameter are inside
    the range the network was trained on (scale augmentation), so the image
    is used as it is.
    """
    scale = TRAINED_DIAMETER / diameter
    return 1.0 if abs(math.log(scale)) <= math.log(RESCALE_TOLERANCE) else scale


def _min_sizes(scale: float, min_size: int | None) -> dict[str, int]:
    """Instance-extraction sizes on the image grid for a working ``scale``.

    The limits hold at the trained nucleus size; an image pixel is ``scale``
    trained-size pixels across. ``min_size`` (image pixels) overrides the
    scaled default.
    """
    per_trained = 1.0 / scale  # image pixels per trained-size pixel
    smallest = MIN_SIZE * per_trained**2 if min_size is None else min_size
    return {
        "grow": math.ceil(GROW * per_trained),
        "min_size": max(1, round(smallest)),
        "min_seed": max(1, round(MIN_SEED * per_trained**2)),
    }


def _pick_window(image: np.ndarray, side: int) -> np.ndarray:
    """The ``side``-square window of ``image`` with the most contrast (or all)."""
    height, width = image.shape
    if height <= side and width <= side:
        return image
    ch, cw = min(side, height), min(side, width)
    step_y, step_x = max(1, ch // 2), max(1, cw // 2)
    best, best_spread = (0, 0), -1.0
    stride = max(1, side // 64)  # a coarse look is enough to rank windows
    for y in range(0, height - ch + 1, step_y):
        for x in range(0, width - cw + 1, step_x):
            spread = float(image[y : y + ch : stride, x : x + cw : stride].std())
            if spread > best_spread:
                best, best_spread = (y, x), spread
    y, x = best
    return image[y : y + ch, x : x + cw]


def _measure(
    net: CompactDeepLab,
    dev: torch.device,
    window: np.ndarray,
    scale: float,
    value_range: tuple[float, float],
    threshold: float,
) -> tuple[float, int]:
    """Median nucleus diameter (working px) and count of ``window`` at ``scale``."""
    resampling = Resampling.for_scale(window.shape, scale)
    work = resampling.to_work(window)
    batch = torch.from_numpy(normalize(work, value_range))[None, None].to(dev)
    with torch.inference_mode():
        probs = torch.softmax(net(batch)[0], dim=0).float().cpu().numpy()
    labels = instances_from_masks(
        probs[CORE] > threshold,
        probs[BACKGROUND] < FOREGROUND_BELOW,
        grow=GROW,
        min_size=MIN_SIZE,
        min_seed=MIN_SEED,
    )
    return nucleus_diameter(labels), int(labels.max())


def _estimate(
    net: CompactDeepLab, dev: torch.device, image: np.ndarray, threshold: float
) -> float:
    """Typical nucleus diameter of ``image`` by a coarse-to-fine look.

    The network looks at one window of ``ESTIMATE_WINDOW`` px (at each scale)
    at octaves 4, 3, 2, 1 and 0 of the image and at 2x. Nuclei much larger
    than the trained size come out in pieces at fine scales, and ones much
    smaller are missed or merged at coarse ones, so the size is read at the
    coarsest scale whose detections have a size the network was trained on,
    then measured once more at the scale that size calls for.

    Real nuclei measure the same in image pixels at neighbouring scales,
    while what a wrong scale makes of them does not: pieces of a large
    nucleus stay near the trained size as the scale changes, and a crowd of
    small nuclei (an embryo, a colony) seen as one blob breaks up one octave
    finer. So the coarsest trained-size scale whose size a neighbouring
    scale confirms (within :data:`SIZE_AGREEMENT`) wins; where none is
    confirmed, the coarsest trained-size scale does.
    """
    value_range = percentile_range(image)
    low, high = TRAINED_DIAMETER / 1.6, TRAINED_DIAMETER * 1.6
    found: list[tuple[float, float, int]] = []
    for scale in (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0):
        if min(image.shape) * scale < 32 and scale < 1:
            continue  # the octave is too small to hold several nuclei
        window = _pick_window(image, math.ceil(ESTIMATE_WINDOW / scale))
        diameter, count = _measure(net, dev, window, scale, value_range, threshold)
        if count:
            found.append((scale, diameter, count))
    if not found:
        return TRAINED_DIAMETER
    sizes = [diameter / scale for scale, diameter, _ in found]  # image pixels

    def confirmed(i: int) -> bool:
        return any(
            0 <= j < len(found)
            and abs(math.log(sizes[j] / sizes[i])) <= math.log(SIZE_AGREEMENT)
            for j in (i - 1, i + 1)
        )

    in_range = [i for i, f in enumerate(found) if low <= f[1] <= high and f[2] >= 3]
    if in_range:
        best = next((i for i in in_range if confirmed(i)), in_range[0])
        scale, diameter, _ = found[best]  # the coarsest confirmed, else the coarsest
    else:
        scale, diameter, _ = min(
            found, key=lambda f: abs(math.log(f[1] / TRAINED_DIAMETER))
        )
    estimate = diameter / scale
    refine = TRAINED_DIAMETER / estimate
    if abs(math.log(refine / scale)) > math.log(1.1):
        window = _pick_window(image, math.ceil(ESTIMATE_WINDOW / refine))
        diameter, count = _measure(net, dev, window, refine, value_range, threshold)
        if count >= 3 and low <= diameter <= high:
            estimate = diameter / refine
    return float(min(max(estimate, 2.0), max(image.shape)))


def estimate_diameter(
    image: np.ndarray,
    model: ModelLike = "nuclei",
    *,
    device: str | torch.device = "auto",
    channel_axis: int | None = None,
    threshold: float = CORE_THRESHOLD,
) -> float:
    """Estimate the typical nucleus diameter (pixels) of a 2-D image.

    The network runs on one window of about ``ESTIMATE_WINDOW`` pixels at a
    few octaves of the image's Gaussian pyramid (and at 2x for tiny nuclei),
    so the cost does not grow with the image; the diameter is read at the
    coarsest octave where the detected nuclei have a size the network was
    trained on, and measured again at the scale it calls for. The diameter is
    the median of ``2 sqrt(area / pi)`` over the detected nuclei, as
    :func:`.data.nucleus_diameter` measures annotations.
    """
    net0 = _as_model(model)
    image = _check_image(image, net0.in_channels, channel_axis)
    dev = resolve_device(device)
    return _estimate(_inference_copy(net0, dev), dev, image, threshold)


def predict_steps(
    image: np.ndarray,
    model: ModelLike = "nuclei",
    *,
    diameter: float | None = None,
    tile_size: int = TILE_SIZE,
    overlap: int = OVERLAP,
    device: str | torch.device = "auto",
    channel_axis: int | None = None,
    threshold: float = CORE_THRESHOLD,
    min_size: int | None = None,
    context_size: int = CONTEXT_SIZE,
    probabilities: bool = False,
    branches: bool = False,
) -> Generator[tuple[int, int], None, Prediction]:
    """One tiled pass giving labels and, on request, probabilities and ASPP maps.

    A generator like :func:`segment_steps` (yields ``(done, total)`` per tile)
    that returns a :class:`Prediction`. ``probabilities`` adds the per-class
    probability maps, ``branches`` the ASPP branch responses (each costs
    ``4 * H * W`` bytes per map). Other parameters as in :func:`segment`.
    """
    net0 = _as_model(model)
    image = _check_image(image, net0.in_channels, channel_axis)
    check_threshold(threshold)
    if min_size is not None and min_size < 1:
        raise ValueError(f"min_size must be at least 1 pixel, got {min_size}")
    shape = image.shape[-2:]
    if diameter is not None:
        diameter = _check_diameter(diameter, shape)
    dev = resolve_device(device)
    net = _inference_copy(net0, dev)
    estimated = diameter is None
    if estimated:
        diameter = _estimate(net, dev, image, threshold)
    resampling = Resampling.for_scale(shape, working_scale(diameter))
    # The network's output comes back to the image grid as it is made (image
    # grid and upsampling: bool masks per tile, memory by the image) or, for
    # a coarser octave, as working-grid probabilities mapped back at the end.
    upsampled = resampling.scale > 1 and not resampling.identity
    on_image = resampling.identity or upsampled
    if resampling.identity:
        grid = _array_grid(image)
    elif upsampled:
        grid = _upsampled_grid(image, resampling)
    else:
        grid = _array_grid(resampling.to_work(image))
    out_shape = shape if on_image else grid.shape
    outs = {}
    if on_image:
        outs["masks"] = np.zeros((2, *shape), bool)
    else:
        outs["pair"] = np.zeros((2, *grid.shape), np.float32)
    if probabilities:
        outs["probabilities"] = np.zeros((len(CLASS_NAMES), *out_shape), np.float32)
    hooks, branch_maps = _branch_capture(net) if branches else ([], None)
    if branches:
        outs["branches"] = np.zeros(
            (len(net.aspp.branch_names), *out_shape), np.float32
        )

    def tile_fn(batch: torch.Tensor) -> dict[str, np.ndarray]:
        probs = torch.softmax(net(batch)[0], dim=0)
        maps = {}
        if resampling.identity:
            maps["masks"] = nucleus_masks(probs, threshold).cpu().numpy()
        else:
            maps["pair"] = probs[[CORE, BACKGROUND]].float().cpu().numpy()
        if probabilities:
            maps["probabilities"] = probs.float().cpu().numpy()
        if branch_maps is not None:
            coarse = branch_maps()
            stride = net.output_stride
            full = F.interpolate(
                coarse,
                size=(coarse.shape[-2] * stride, coarse.shape[-1] * stride),
                mode="bilinear",
                align_corners=False,
            )
            maps["branches"] = full[0, :, : batch.shape[-2], : batch.shape[-1]]
            maps["branches"] = maps["branches"].float().cpu().numpy()
        return maps

    def write_upsampled(tile: Tile, maps: dict[str, np.ndarray]) -> None:
        """Bring a working tile's kept part to its rows and columns of the image."""
        y0, x0, (ky0, ky1), (kx0, kx1) = tile
        rows = resampling.image_span(0, ky0, ky1)
        cols = resampling.image_span(1, kx0, kx1)
        if rows[0] == rows[1] or cols[0] == cols[1]:
            return
        area = (..., slice(*rows), slice(*cols))

        def back(stack: np.ndarray) -> np.ndarray:
            return np.stack(
                [resampling.tile_to_image(m, (y0, x0), rows, cols) for m in stack]
            )

        core, background = back(maps["pair"])
        outs["masks"][0][area[1:]] = core > threshold
        outs["masks"][1][area[1:]] = background < FOREGROUND_BELOW
        for key in ("probabilities", "branches"):
            if key in outs:
                outs[key][area] = back(maps[key])

    try:
        yield from _run_tiled(
            grid,
            net,
            dev,
            tile_fn,
            write_upsampled if upsampled else _write_into(outs),
            tile_size=tile_size,
            overlap=overlap,
            context_size=context_size,
        )
    finally:
        for hook in hooks:
            hook.remove()
    sizes = _min_sizes(resampling.scale, min_size)
    if on_image:
        interior, foreground = outs.pop("masks")
    else:  # large nuclei: probabilities back to the image grid, smoothly
        core, background = outs.pop("pair")
        interior = resampling.map_to_image(core) > threshold
        del core
        foreground = resampling.map_to_image(background) < FOREGROUND_BELOW
        del background
    labels = instances_from_masks(interior, foreground, **sizes)

    def to_image(maps: np.ndarray) -> list[np.ndarray]:
        return list(maps) if on_image else [resampling.map_to_image(m) for m in maps]

    return Prediction(
        labels=labels,
        probabilities=dict(zip(CLASS_NAMES, to_image(outs.get("probabilities", ())))),
        branches=dict(zip(net.aspp.branch_names, to_image(outs.get("branches", ())))),
        device=str(dev),
        diameter=float(diameter),
        estimated=estimated,
        resampling=resampling,
    )


@forwards_options(predict_steps, drop=("probabilities", "branches"))
def segment_steps(
    image: np.ndarray,
    model: ModelLike = "nuclei",
    *,
    axes: str | None = None,
    stitch_threshold: float = 0.25,
    link: bool = False,
    **options: Any,
) -> Steps:
    """Generator form of :func:`segment`: yields ``(done, total)``, returns labels.

    Use ``labels = yield from segment_steps(...)`` inside a napari generator
    worker; stopping the iteration (``worker.quit()``) stops between tiles (or
    planes of a stack) and returns nothing. Options are those of
    :func:`segment` (but ``progress`` and ``cancel``).
    """
    image = np.asarray(image)
    looks_rgb = axes is None and image.ndim == 3 and image.shape[-1] in (3, 4)
    if options.get("channel_axis") is not None or looks_rgb:
        axes = "yx"  # one plane with channels (or the error that says how)
    else:
        axes = check_axes(axes, image.ndim)
    if axes == "yx":
        prediction = yield from predict_steps(image, model, **options)
        return prediction.labels
    net = _as_model(model)
    diameter = options.pop("diameter", None)
    if diameter is None:  # one size for the whole stack, from its middle plane
        diameter = estimate_diameter(
            middle_plane(image), net, device=options.get("device", "auto")
        )

    def plane_labels(plane: np.ndarray) -> np.ndarray:
        return drain(predict_steps(plane, net, diameter=diameter, **options)).labels

    return (
        yield from segment_stack_steps(
            image, axes, plane_labels, stitch_threshold=stitch_threshold, link=link
        )
    )


_SEGMENT_DOC = """Segment nuclei: a fluorescence image (or stack) in, labels out.

Parameters
----------
image : ndarray (H, W), or a stack (see ``axes``)
    Any integer or float dtype and range (normalised by its 1st and 99.8th
    percentiles). Never modified. A dask or zarr array is loaded; for one
    larger than memory use :func:`napari_pyramids.segment_to_zarr`, which
    gives the same labels block by block.
model : str, path or CompactDeepLab
    A registered name, a weights file, or a loaded model (:func:`load_model`).
diameter : float, optional
    Typical nucleus diameter in pixels. The network runs at the octave of
    the image's pyramid (REDUCE steps, then a fractional resample) or the
    upsampling at which nuclei have the trained diameter
    (``train.TRAINED_DIAMETER``, 20 px; images within
    ``RESCALE_TOLERANCE`` of it are used as they are), and its
    probabilities come back to the image grid bilinearly. None estimates
    it (:func:`estimate_diameter`).
tile_size, overlap : int
    Tiles of at most ``tile_size`` pixels square (on the working grid)
    sharing ``overlap`` pixels with each neighbour; memory is bounded by
    the tile, not the image.
device : str or torch.device
    ``"auto"`` (CUDA, MPS, CPU), or e.g. ``"cpu"``, ``"cuda:1"``.
channel_axis : int, optional
    Axis of a channel axis of length 1 (or of ``in_channels``).
threshold : float
    Core probability above which a pixel seeds a nucleus, in (0, 1)
    (default ``CORE_THRESHOLD``). Nucleus pixels (core or rim) are
    those whose background probability is below ``FOREGROUND_BELOW``.
min_size : int, optional
    Smallest nucleus kept, in image pixels; default: 6 px at the trained
    nucleus size, scaled with the diameter.
context_size : int
    Long side of the (block-averaged) image the image-pooling branch sees.
axes : {"yx", "zyx", "tyx", "tzyx"}, optional
    The image's axes (None: "yx" for 2-D, "zyx" for 3-D). Stacks are
    segmented plane by plane at one diameter (given, or estimated on the
    middle plane); on "zyx" nuclei overlapping by IoU >=
    ``stitch_threshold`` in neighbouring planes share an id; on "tyx" /
    "tzyx" with ``link`` a nucleus keeps its id from frame to frame
    (:mod:`.stacks`).
progress : callable(done, total), optional
    Called before the first tile (or plane of a stack) with ``(0, total)``
    and after every one.
cancel : callable() -> bool, optional
    Checked between tiles; when it returns True, :class:`SegmentationCancelled`
    is raised and nothing is returned.

Returns
-------
ndarray
    Labels of shape (H, W), 0 for background, in the smallest unsigned
    integer dtype that holds the number of nuclei.
"""

segment = function_form(
    segment_steps,
    name="segment",
    doc=_SEGMENT_DOC,
    returns="np.ndarray",
    cancelled=SegmentationCancelled,
)


@forwards_options(
    predict_steps, drop=("threshold", "min_size", "probabilities", "branches")
)
def aspp_branch_responses(
    image: np.ndarray,
    model: ModelLike = "nuclei",
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    **options: Any,
) -> dict[str, np.ndarray]:
    """Per-branch ASPP responses, upsampled to the image size.

    Each branch of ``classifier.0.convs`` (the 1x1 branch, one per atrous
    rate, the image-pooling branch) is captured with a forward hook, averaged
    over its channels (post-ReLU activation, so "how much this branch
    responds here") and upsampled bilinearly (``align_corners=False``, pixel
    centres aligned) from the output stride to the working grid, and from
    there to the image grid (``diameter`` as in :func:`segment`).

    Returns
    -------
    dict
        ``{"1x1": ..., "rate 2": ..., ..., "image pooling": ...}``, float32
        arrays of shape (H, W). Other parameters as in :func:`segment`.
    """
    steps = predict_steps(image, model, branches=True, **options)
    return drive(steps, progress, cancel, cancelled=SegmentationCancelled).branches
