"""Segmentation: image in, nuclei instance labels (or ASPP branch maps) out.

:func:`predict_steps` brings the image to the working scale its nucleus size
calls for (:mod:`.diameter`), runs the network tile by tile (:mod:`.tiling`)
with the image-pooling branch pinned to the whole image (:mod:`.context`), and
returns the class probabilities on the image grid; :func:`segment_steps` turns
them into instance labels, plane by plane for stacks.

Long runs report progress and can be cancelled between tiles, committing
nothing: :func:`segment_steps` is a generator that yields ``(done, total)``
per tile (for napari's generator thread workers), and :func:`segment` takes
``progress`` and ``cancel`` callbacks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..progress import Cancel, Cancelled, Progress, drain, drive, function_form
from ..signatures import forwards_options
from . import defaults
from .context import _array_grid, _upsampled_grid
from .defaults import (
    CONTEXT_SIZE,
    CORE_THRESHOLD,
    OVERLAP,
    TILE_SIZE,
    check_threshold,
)
from .diameter import (
    _check_diameter,
    _diameter_with,
    _min_sizes,
    estimate_diameter,
    working_scale,
)
from .instances import instances_from_masks
from .model import CompactDeepLab
from .rescale import TRAINED_DIAMETER, Resampling
from .runtime import ModelLike, _as_model, _check_image, _inference_copy, resolve_device
from .stacks import check_axes, middle_plane, segment_stack_steps
from .synthetic import BACKGROUND, CLASS_NAMES, CORE
from .tiling import Tile, _run_tiled, _write_into, nucleus_masks

__all__ = [
    "Prediction",
    "SegmentationCancelled",
    "aspp_branch_responses",
    "predict_steps",
    "segment",
    "segment_steps",
]

Steps = Generator[tuple[int, int], None, np.ndarray]


class SegmentationCancelled(Cancelled):
    """Raised by :func:`segment` when ``cancel()`` returned True; nothing returned."""


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
        diameter = _diameter_with(net, dev, image, threshold)
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
        outs["masks"][1][area[1:]] = background < defaults.FOREGROUND_BELOW
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
        foreground = resampling.map_to_image(background) < defaults.FOREGROUND_BELOW
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
