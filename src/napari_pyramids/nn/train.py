"""Train the "nuclei" model on annotated images (and, optionally, generated ones).

The command reads a folder in the layout users keep their own annotations in
(``images/<id>.tif`` + ``labels/<id>.tif``, :mod:`.data`) and trains on its
training fold only: the validation and tuning folds (:func:`.data.split_ids`)
are never seen. How the shipped weights were made, and what they score, is in
``weights/nuclei.md`` (the model card)::

    python -m napari_pyramids.nn.train --data ../shared/data/dsb2018-train \\
        --init nuclei --steps 6000 --out runs/nuclei.safetensors

Every crop is rescaled so that its image's nuclei have the trained diameter
(:data:`TRAINED_DIAMETER`) times a random factor in ``--scale-range``: the
model learns one size band, and :func:`.infer.segment` brings any image to it
through the pyramid. Classes are background, core and rim
(:func:`.synthetic.classes_from_labels`); the loss is cross-entropy with the
rim weighted up and small nuclei weighted up (:func:`pixel_weights`), and
pixels outside an image's annotated region weigh nothing.

A run checkpoints (weights, averaged weights, optimizer, schedule, step)
beside ``--out`` every ``--checkpoint-every`` steps; ``--resume`` continues a
run that was cut off from its last checkpoint, with the same result as an
uninterrupted run up to the random crops drawn after the restart.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import math
import sys
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..files import write_atomically
from ..progress import Cancel, Cancelled, Progress, drain, reporter
from ..signatures import forwards_options
from .data import AnnotatedImage, nucleus_diameter, read_folder, split_ids
from .model import CompactDeepLab
from .normalize import percentile_range
from .rescale import TRAINED_DIAMETER
from .synthetic import classes_from_labels, make_nuclei_image

__all__ = [
    "TRAINED_DIAMETER",
    "CropSampler",
    "TrainingStopped",
    "main",
    "pixel_weights",
    "train",
    "train_steps",
]

_CLASS_WEIGHTS = (1.0, 1.0, 2.0)
#: Area (px) of a nucleus of 24 px diameter: smaller nuclei weigh more.
_REFERENCE_AREA = np.pi * 12.0**2
_MAX_NUCLEUS_WEIGHT = 3.0
#: How close (px, at the trained size) to two nuclei a pixel is "where they meet".
_CONTACT_RADIUS = 2


def contact_zone(labels: np.ndarray, radius: int = _CONTACT_RADIUS) -> np.ndarray:
    """Pixels within ``radius`` (chessboard distance) of two different nuclei.

    Where touching nuclei meet: the few pixels whose class decides whether
    two cores stay apart or merge into one instance.
    """
    side = 2 * radius + 1
    kernel = np.ones((side, side), np.uint8)
    ids = labels.astype(np.float32)  # exact below 2**24; cv2 takes float32
    highest = cv2.dilate(ids, kernel)
    ids[labels == 0] = np.inf
    lowest = cv2.erode(ids, kernel, borderValue=np.inf)
    return np.isfinite(lowest) & (highest > lowest)


def pixel_weights(
    labels: np.ndarray,
    classes: np.ndarray,
    balance: bool,
    contact: float = 1.0,
) -> np.ndarray:
    """Per-pixel loss weights: class weights times a size and a contact term.

    Instance scores count every nucleus once, but a per-pixel loss counts a
    nucleus by its area, so a 9 px nucleus weighs 7x less than a 24 px one
    and crowds of small nuclei are learnt last. With ``balance`` each
    nucleus's pixels weigh ``sqrt(reference area / its area)``, between 1
    and 3: small nuclei count more without letting single pixels dominate.
    Pixels where two nuclei meet (:func:`contact_zone`) weigh ``contact``
    times more: they are few, and a mistake there merges two nuclei.
    """
    if contact <= 0:
        raise ValueError(f"contact weight must be positive, got {contact}")
    weights = np.asarray(_CLASS_WEIGHTS, np.float32)[classes]
    if contact != 1.0:
        weights[contact_zone(labels)] *= np.float32(contact)
    if balance and labels.max():
        areas = np.bincount(labels.ravel().astype(np.int64)).astype(np.float32)
        size = np.sqrt(_REFERENCE_AREA / np.maximum(areas, 1.0))
        size = np.clip(size, 1.0, _MAX_NUCLEUS_WEIGHT)
        size[0] = 1.0
        weights *= size[labels]
    return weights


@dataclass
class _Item:
    """An annotated image prepared for cropping."""

    image: np.ndarray  # float32, normalised by the whole image's percentiles
    labels: np.ndarray  # uint16 or int32
    valid: np.ndarray | None  # where the labels are complete (None: everywhere)
    diameter: float
    box: tuple[tuple[int, int], tuple[int, int]] | None  # rows, cols of ``valid``


def _prepare(image: np.ndarray, labels: np.ndarray, valid=None) -> _Item | None:
    lo, hi = percentile_range(image)
    scale = 1.0 / (hi - lo) if hi > lo else 0.0
    normalised = (image.astype(np.float32) - np.float32(lo)) * np.float32(scale)
    labels = np.asarray(labels)
    labels = labels.astype(np.uint16 if labels.max() <= 0xFFFF else np.int32)
    region = labels if valid is None else labels[np.asarray(valid, bool)]
    diameter = nucleus_diameter(region)
    if not np.isfinite(diameter):
        return None  # nothing to learn the size from
    if valid is None:
        return _Item(normalised, labels, None, diameter, None)
    mask = np.asarray(valid, np.uint8)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = ((rows[0], rows[-1] + 1), (cols[0], cols[-1] + 1))
    return _Item(normalised, labels, mask, diameter, box)


def _resize(array: np.ndarray, shape: tuple[int, int], nearest: bool) -> np.ndarray:
    if array.shape == shape:
        return array
    if nearest:
        method = cv2.INTER_NEAREST
    else:
        method = cv2.INTER_AREA if shape[0] < array.shape[0] else cv2.INTER_LINEAR
    if array.dtype == np.int32:  # cv2.resize takes no int32: exact in float64
        return cv2.resize(array.astype(np.float64), shape[::-1], interpolation=method)
    return cv2.resize(array, shape[::-1], interpolation=method)


class CropSampler:
    """Random training crops of annotated images, at the trained nucleus size.

    Each crop is cut from an image (picked with odds growing with its area at
    the trained scale), rescaled so its nuclei have ``diameter`` times a
    log-uniform factor in ``scale_range``, rotated and flipped, and its
    intensity perturbed (contrast, offset, gamma, noise, blur), so the model
    sees the spread of microscopes it will meet. Parts of a crop outside its
    image or outside the annotated region get weight 0.

    ``synthetic`` is the share of crops drawn from generated images
    (:func:`.synthetic.make_nuclei_image`, a pool refreshed as it is used);
    with no annotated images every crop is generated.
    """

    def __init__(
        self,
        images: Sequence[AnnotatedImage],
        rng: np.random.Generator,
        *,
        patch: int = 192,
        diameter: float = TRAINED_DIAMETER,
        scale_range: tuple[float, float] = (0.7, 1.4),
        core_fraction: float = 0.5,
        balance: bool = True,
        contact: float = 1.0,
        synthetic: float = 0.0,
        regions: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        if not 0.0 <= synthetic <= 1.0:
            raise ValueError(f"synthetic must be a share in [0, 1], got {synthetic}")
        low, high = scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be 0 < low <= high, got {scale_range}")
        if regions is not None and len(regions) != len(images):
            raise ValueError("give one region (or None) per annotated image")
        self.rng, self.patch, self.diameter = rng, patch, diameter
        self.log_scales = (math.log(low), math.log(high))
        self.core_fraction, self.balance = core_fraction, balance
        self.contact = contact
        prepared = [
            _prepare(a.image, a.labels, None if regions is None else regions[i])
            for i, a in enumerate(images)
        ]
        self.items = [item for item in prepared if item is not None]
        if images and not self.items:
            raise ValueError("none of the annotated images holds a labelled nucleus")
        self.synthetic = 1.0 if not self.items else synthetic
        areas = np.array(
            [item.image.size * (diameter / item.diameter) ** 2 for item in self.items]
        )
        self.odds = np.sqrt(areas) / np.sqrt(areas).sum() if len(areas) else None
        self.pool: list[_Item] = []

    def _generated(self) -> _Item:
        """A generated image from a pool of 16, one replaced per draw."""
        while len(self.pool) < 16:
            self.pool.append(self._make_generated())
        self.pool[self.rng.integers(len(self.pool))] = self._make_generated()
        return self.pool[self.rng.integers(len(self.pool))]

    def _make_generated(self) -> _Item:
        while True:
            item = _prepare(*make_nuclei_image((256, 256), self.rng))
            if item is not None:
                return item

    def _pick(self) -> _Item:
        if self.rng.random() < self.synthetic:
            return self._generated()
        return self.items[self.rng.choice(len(self.items), p=self.odds)]

    def crop(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One (image, classes, weights) crop of ``patch`` x ``patch`` pixels."""
        rng, patch = self.rng, self.patch
        item = self._pick()
        scale = self.diameter / item.diameter * math.exp(rng.uniform(*self.log_scales))
        height, width = item.labels.shape
        side = max(1, round(patch / scale))
        ch, cw = min(height, side), min(width, side)
        if item.valid is None:
            y, x = rng.integers(0, height - ch + 1), rng.integers(0, width - cw + 1)
        else:  # centred in the annotated box: no step spent on unlabelled parts
            (ylo, yhi), (xlo, xhi) = item.box
            y = int(np.clip(rng.integers(ylo, yhi) - ch // 2, 0, height - ch))
            x = int(np.clip(rng.integers(xlo, xhi) - cw // 2, 0, width - cw))
        out = (
            min(patch, max(1, round(ch * scale))),
            min(patch, max(1, round(cw * scale))),
        )
        image = _resize(item.image[y : y + ch, x : x + cw], out, nearest=False)
        labels = _resize(item.labels[y : y + ch, x : x + cw], out, nearest=True)
        labels = labels.astype(np.int64)
        classes = classes_from_labels(labels, self.core_fraction)
        weights = pixel_weights(labels, classes, self.balance, self.contact)
        if item.valid is not None:
            valid = _resize(item.valid[y : y + ch, x : x + cw], out, nearest=True)
            weights *= valid
        image = self._perturb(image)
        maps = []
        for array in (image, classes, weights):
            padded = np.zeros((patch, patch), array.dtype)
            padded[: out[0], : out[1]] = array
            maps.append(padded)
        k, flip = int(rng.integers(4)), rng.random() < 0.5
        return tuple(
            np.ascontiguousarray(np.rot90(m, k)[:, ::-1] if flip else np.rot90(m, k))
            for m in maps
        )

    def _perturb(self, image: np.ndarray) -> np.ndarray:
        """Contrast, offset, gamma, blur and noise: other microscopes' looks."""
        rng = self.rng
        image = image * np.float32(math.exp(rng.normal(0, 0.25)))
        image += np.float32(rng.normal(0, 0.05))
        if rng.random() < 0.3:
            gamma = math.exp(rng.normal(0, 0.3))
            image = np.sign(image) * np.abs(image) ** np.float32(gamma)
        if rng.random() < 0.2:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
        if rng.random() < 0.3:
            image = image + rng.normal(0, rng.uniform(0.01, 0.08), image.shape).astype(
                np.float32
            )
        return image.astype(np.float32, copy=False)

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (N, 1, p, p), classes (N, p, p) and pixel weights (N, p, p)."""
        crops = [self.crop() for _ in range(batch_size)]
        images, classes, weights = (
            torch.from_numpy(np.stack(c)) for c in zip(*crops, strict=True)
        )
        return images[:, None], classes.long(), weights


class TrainingStopped(Cancelled):
    """``cancel()`` returned True: training stopped, nothing was returned."""


def _warmup_cosine(steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over a share of the steps, then cosine.

    The factor falls to 1 % of the peak at the last step.
    """
    ramp = max(1, round(warmup * steps))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        done = (step - ramp) / max(1, steps - ramp)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))

    return factor


def _by_time(seconds: float) -> Callable[[int], float]:
    """Learning-rate factor for a time budget: 20 warm-up steps, cosine over time."""
    start = time.perf_counter()

    def factor(step: int) -> float:
        done = min(1.0, (time.perf_counter() - start) / seconds)
        return min(1.0, (step + 1) / 20) * (
            0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * done))
        )

    return factor


def train_steps(
    images: Sequence[AnnotatedImage] = (),
    *,
    seed: int = 0,
    steps: int | None = 6000,
    batch_size: int = 8,
    patch: int = 192,
    lr: float = 3e-3,
    scale_range: tuple[float, float] = (0.7, 1.4),
    synthetic: float = 0.0,
    regions: Sequence[np.ndarray | None] | None = None,
    core_fraction: float = 0.5,
    balance: bool = True,
    contact: float = 1.0,
    ema_decay: float | None = None,
    model_options: dict[str, Any] | None = None,
    init: CompactDeepLab | None = None,
    time_limit: float | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 250,
    on_checkpoint: Callable[[CompactDeepLab, int], None] | None = None,
    log_every: int = 50,
) -> Generator[tuple[int, float], None, CompactDeepLab]:
    """Train a :class:`CompactDeepLab` (from scratch, or on from ``init``).

    A generator: yields ``(step, loss)`` after every optimiser step and
    returns the trained model in eval mode. Closing it (a GUI's Cancel)
    stops at once; nothing after the last checkpoint is saved.

    Parameters
    ----------
    images : sequence of AnnotatedImage
        Annotated images to train on; empty: generated images only.
    steps, batch_size, patch, lr
        Optimiser steps (AdamW; ``lr`` after a linear warm-up, then cosine
        decay; ``steps=None`` spreads the decay over ``time_limit`` instead), crops
        per step and their side in pixels.
    scale_range, synthetic, regions, core_fraction, balance, contact
        Passed to :class:`CropSampler` (``contact``: the loss weight of the
        pixels where nuclei meet, :func:`pixel_weights`).
    ema_decay : float, optional
        The returned (and checkpointed) model is the exponential moving
        average of the weights and BN statistics (Polyak averaging), which
        smooths out the last steps' noise at no cost at inference.
    model_options : dict, optional
        :class:`CompactDeepLab` arguments (its defaults are the shipped
        architecture); ignored when ``init``, a model to continue from
        (fine-tuning), is given. ``init`` is left untouched.
    time_limit : float, optional
        Seconds; training ends early (with the schedule cut short) when they
        are spent.
    checkpoint : path, optional
        File for the full training state, saved every ``checkpoint_every``
        steps and at the end; if it exists, training resumes from it.
    on_checkpoint : callable(model, step), optional
        Called every ``checkpoint_every`` steps but the last with the model
        as it would be returned (the command exports its weights then, so a
        run cut short leaves a usable model).
    """
    torch.manual_seed(seed)
    model = (
        copy.deepcopy(init)
        if init is not None
        else CompactDeepLab(**(model_options or {}))
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    if steps is None:
        if time_limit is None:
            raise ValueError("give steps, time_limit or both")
        factor = _by_time(time_limit)
        steps = sys.maxsize
    else:
        factor = _warmup_cosine(steps, 0.05 if init is not None else 0.2)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    average = (
        None
        if ema_decay is None
        else AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True
        )
    )
    first = 1
    checkpoint = None if checkpoint is None else Path(checkpoint)
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if average is not None and "average" in state:
            average.load_state_dict(state["average"])
        first = int(state["step"]) + 1
        print(f"resumed from {checkpoint} at step {first - 1}", flush=True)
    # crops after a restart come from a stream of their own
    rng = np.random.default_rng([seed, first])
    sampler = CropSampler(
        images,
        rng,
        patch=patch,
        scale_range=scale_range,
        core_fraction=core_fraction,
        balance=balance,
        contact=contact,
        synthetic=synthetic,
        regions=regions,
    )
    result = model if average is None else average.module
    model.train()
    start = time.perf_counter()
    for step in range(first, steps + 1):
        images_, targets, weights = sampler.batch(batch_size)
        losses = F.cross_entropy(model(images_), targets, reduction="none")
        loss = (losses * weights).sum() / weights.sum().clamp(min=1e-6)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if average is not None:
            average.update_parameters(model)
        yield step, loss.item()
        seconds = time.perf_counter() - start
        if step % log_every == 0 or step == steps:
            print(
                f"step {step:5d}  loss {loss.item():.4f}  {seconds / 60:.1f} min",
                flush=True,
            )
        last = step == steps or (time_limit is not None and seconds >= time_limit)
        due = step % checkpoint_every == 0
        if checkpoint is not None and (due or last):
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "step": step,
            }
            if average is not None:
                state["average"] = average.state_dict()
            write_atomically(checkpoint, lambda p, state=state: torch.save(state, p))
        if last:
            break
        if on_checkpoint is not None and due:
            on_checkpoint(result.eval(), step)
            model.train()
    return result.eval()


def step_cap(function: Callable, options: dict[str, Any]) -> int:
    """The ``steps`` a call of ``function`` with ``options`` is capped at; 0: none."""
    default = inspect.signature(function).parameters["steps"].default
    return int(options.get("steps", default) or 0)


@forwards_options(train_steps)
def train(
    images: Sequence[AnnotatedImage] = (),
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    on_loss: Callable[[int, float], None] | None = None,
    **options: Any,
) -> CompactDeepLab:
    """:func:`train_steps` run to the end; returns the trained model (eval mode).

    The callbacks follow :mod:`napari_pyramids.progress`:
    ``progress(done, total)`` after every step, ``total`` being ``steps``
    (training may end sooner when ``time_limit`` is spent) or 0 with
    ``steps=None`` (only the time limit bounds it); ``cancel()`` after every
    step but the last, True stopping the training with
    :class:`TrainingStopped`. ``on_loss(step, loss)`` gets each step's loss
    (live plots). The other options are :func:`train_steps`'.
    """
    steps = train_steps(images, **options)
    total = step_cap(train, options)
    report = reporter(steps, progress, cancel, TrainingStopped)

    def handle(item: tuple[int, float]) -> None:
        step, loss = item
        if on_loss is not None:
            on_loss(step, loss)
        report(step, total)

    return drain(steps, handle)


def evaluate(
    model: torch.nn.Module, images: Sequence[AnnotatedImage], **segment_options
) -> dict[str, float]:
    """Pooled and per-image AP / mAP of ``model`` on annotated images."""
    from .infer import segment
    from .metrics import score_images

    return score_images(
        (item.labels, segment(item.image, model, device="cpu", **segment_options))
        for item in images
    ).summary()


#: CompactDeepLab arguments the command exposes: (nargs, metavar, help).
_ARCHITECTURE_OPTIONS = {
    "widths": (
        4,
        ("STEM", "L1", "L2", "L3"),
        "channels of the stem and the three backbone stages",
    ),
    "aspp_channels": (None, None, "ASPP width"),
    "skip_widths": (2, ("S2", "S4"), "decoder skip channels at strides 2 and 4"),
    "decoder_widths": (2, ("S2", "S4"), "decoder fusion channels at strides 2 and 4"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="folder with images/ and labels/ (its training fold is used); "
        "without it, generated images only",
    )
    parser.add_argument(
        "--synthetic",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of crops drawn from generated images (default 0 with --data)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch", type=int, default=192)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--scale-range",
        type=float,
        nargs=2,
        default=(0.7, 1.4),
        metavar=("LOW", "HIGH"),
        help="nuclei are rescaled to the trained diameter times a factor in this range",
    )
    parser.add_argument(
        "--core-fraction",
        type=float,
        default=0.5,
        help="core: distance to the outline >= this fraction of its maximum",
    )
    parser.add_argument(
        "--no-balance",
        dest="balance",
        action="store_false",
        help="weigh every pixel alike instead of favouring small nuclei",
    )
    parser.add_argument(
        "--contact-weight",
        type=float,
        default=1.0,
        metavar="W",
        help="loss weight of the pixels where two nuclei meet (default 1: as any)",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="DECAY",
        help="save the exponential moving average of the weights (e.g. 0.999)",
    )
    parser.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="continue from a registered model or weights file (fine-tuning), "
        "keeping its architecture",
    )
    for name, (nargs, metavar, text) in _ARCHITECTURE_OPTIONS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            nargs=nargs,
            metavar=metavar,
            help=f"{text} (default: CompactDeepLab's)",
        )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds of training",
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=250, help="save the state every N steps"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint beside --out (OUT.ckpt) if there is one",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", required=True, help="output .safetensors path")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    architecture = {
        name: getattr(args, name)
        for name in _ARCHITECTURE_OPTIONS
        if getattr(args, name) is not None
    }
    if args.init is not None and architecture:
        flags = ", ".join("--" + name.replace("_", "-") for name in architecture)
        parser.error(
            f"--init keeps the architecture of the model it loads; drop {flags}"
        )
    from .weights import load_model, save_model, sha256_file, weights_file

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    checkpoint = out.with_name(out.name + ".ckpt")
    if checkpoint.exists() and not args.resume:
        parser.error(
            f"{checkpoint} exists (a run cut off?): pass --resume to continue it, "
            "or remove it to start over"
        )
    start = time.perf_counter()
    meta: dict[str, Any] = {
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "patch": args.patch,
        "lr": args.lr,
        "scale_range": list(args.scale_range),
        "trained_diameter": TRAINED_DIAMETER,
        "core_fraction": args.core_fraction,
        "balance": args.balance,
        "contact_weight": args.contact_weight,
        "ema": args.ema,
        "synthetic": args.synthetic,
    }
    images: list[AnnotatedImage] = []
    if args.data is not None:
        from .data import list_ids

        ids = split_ids(list_ids(args.data))["train"]
        images = read_folder(args.data, ids)
        meta["data"] = {"folder": Path(args.data).name, "train_ids": len(ids)}
        print(f"{len(images)} training images from {args.data}", flush=True)
    init = None
    if args.init is not None:
        init = load_model(args.init)
        meta["init"] = {
            "model": args.init,
            "sha256": sha256_file(weights_file(args.init)),
        }

    def on_checkpoint(model: CompactDeepLab, step: int) -> None:
        save_model(model, out, **meta, steps_done=step)

    model = train(
        images,
        seed=args.seed,
        steps=args.steps,
        batch_size=args.batch_size,
        patch=args.patch,
        lr=args.lr,
        scale_range=tuple(args.scale_range),
        synthetic=args.synthetic,
        core_fraction=args.core_fraction,
        balance=args.balance,
        contact=args.contact_weight,
        ema_decay=args.ema,
        init=init,
        model_options=architecture,
        time_limit=args.time_limit,
        checkpoint=checkpoint,
        checkpoint_every=args.checkpoint_every,
        on_checkpoint=on_checkpoint,
    )
    minutes = (time.perf_counter() - start) / 60
    save_model(
        model,
        out,
        **meta,
        steps_done=int(torch.load(checkpoint, weights_only=True)["step"]),
        train_minutes=round(minutes, 1),
    )
    print(f"saved {out} after {minutes:.1f} min; checkpoint kept at {checkpoint}")
    if images:
        from .data import list_ids

        tune = read_folder(args.data, split_ids(list_ids(args.data))["tune"])
        print("tuning fold:", evaluate(model, tune))


if __name__ == "__main__":
    main()
