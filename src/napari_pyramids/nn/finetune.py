"""Fine-tune a nuclei model on a few painted (or corrected) label images.

The training loop, losses and augmentations are :func:`.train.train`'s, the
ones the shipped model was trained with; what this module adds is what a
user's few labels need: where they are complete (regions), a part kept aside
to score the model before and after, early stopping on that score, and a
record of what was done that :func:`.weights.save_model` writes with the
weights.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..progress import Cancel, Cancelled, Progress, drain, reporter
from ..signatures import forwards_options
from .data import AnnotatedImage, nucleus_diameter
from .metrics import match_counts
from .model import CompactDeepLab
from .train import step_cap, train_steps

__all__ = [
    "FinetuneCancelled",
    "check_pairs",
    "default_region",
    "finetune",
    "finetune_steps",
]

#: Steps between two looks at the held-out score (and the last one).
_EVAL_EVERY = 60


class FinetuneCancelled(Cancelled):
    """``cancel()`` returned True: nothing was returned, the base is unchanged."""


def default_region(labels: np.ndarray, margin: float) -> np.ndarray:
    """Where painted labels are taken as complete: their bounding box plus ``margin``.

    A user who painted or corrected some nuclei has looked at that part of
    the image; pixels far from every painted nucleus may hold nuclei nobody
    painted, so they are left out of the loss.
    """
    rows, cols = np.nonzero(labels)
    region = np.zeros(labels.shape, bool)
    if not len(rows):
        return region
    pad = int(math.ceil(margin))
    y0, y1 = max(0, rows.min() - pad), min(labels.shape[0], rows.max() + pad + 1)
    x0, x1 = max(0, cols.min() - pad), min(labels.shape[1], cols.max() + pad + 1)
    region[y0:y1, x0:x1] = True
    return region


def check_pairs(
    pairs, regions
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Validate (image, labels) pairs and their regions; clear errors naming the fix."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("give at least one (image, labels) pair to learn from")
    if regions is not None and len(regions) != len(pairs):
        raise ValueError(
            f"{len(regions)} regions for {len(pairs)} pairs: give one region "
            "(or None) per pair"
        )
    checked = []
    for i, (image, labels) in enumerate(pairs):
        image, labels = np.asarray(image), np.asarray(labels)
        if image.ndim != 2:
            raise ValueError(
                f"pair {i}: the image has shape {image.shape}; give one 2-D plane "
                "(for RGB, the channel with the nuclear stain, e.g. image[..., 2])"
            )
        if labels.shape != image.shape:
            raise ValueError(
                f"pair {i}: labels {labels.shape} and image {image.shape} differ in "
                "shape; paint the labels on a layer of the image's size"
            )
        if labels.dtype.kind not in "iu":
            raise ValueError(f"pair {i}: labels must be integers, got {labels.dtype}")
        if not labels.any():
            raise ValueError(
                f"pair {i}: the labels are empty; paint (or correct) a few nuclei first"
            )
        region = None if regions is None else regions[i]
        if region is not None:
            region = np.asarray(region, bool)
            if region.shape != image.shape:
                raise ValueError(
                    f"pair {i}: region {region.shape} and image {image.shape} differ "
                    "in shape"
                )
            if not (region & (labels > 0)).any():
                raise ValueError(
                    f"pair {i}: the region holds no labelled nucleus; draw it around "
                    "the nuclei you painted"
                )
        checked.append((image, labels, region))
    return checked


def _holdout_split(
    labels: np.ndarray, region: np.ndarray, share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``region`` into a training part and a held-out part below it.

    The held-out nuclei are the ``share`` of the region's nuclei lowest in the
    image (by centre, at least one, and never all); the held-out part is the
    region from the top of the highest of them down, without the other
    nuclei, and the training part the region above it. No nucleus is both
    trained on and scored. With fewer than two nuclei nothing is held out.
    """
    from scipy import ndimage as ndi

    ids = np.unique(labels[region])
    ids = ids[ids > 0]
    held = np.zeros(region.shape, bool)
    if len(ids) < 2:
        return region.copy(), held
    centres = np.array(ndi.center_of_mass(np.ones(labels.shape), labels, ids))
    count = min(len(ids) - 1, max(1, int(round(share * len(ids)))))
    chosen = ids[np.argsort(centres[:, 0])[-count:]]
    chosen_pixels = np.isin(labels, chosen)
    cut = int(np.flatnonzero(chosen_pixels.any(axis=1))[0])
    rows = np.arange(region.shape[0])[:, None]
    others = (labels > 0) & ~chosen_pixels
    held = region & (rows >= cut) & ~others
    trained = region & (rows < cut)
    return trained, held


def _score(model, items, diameter) -> float:
    """Pooled AP@0.5 on held-out parts: nuclei whose centre lies in the part."""
    from .infer import segment

    tp = fp = fn = 0
    for image, labels, held in items:
        pred = segment(image, model, diameter=diameter, device="cpu")
        true = np.where(_centred_in(labels, held), labels, 0)
        found = np.where(_centred_in(pred, held), pred, 0)
        counts = match_counts(true, found, (0.5,))
        tp, fp, fn = tp + counts.tp[0], fp + counts.fp[0], fn + counts.fn[0]
    total = tp + fp + fn
    return float(tp / total) if total else 1.0


def _centred_in(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pixels of the instances whose centroid lies inside ``mask``."""
    from scipy import ndimage as ndi

    ids = np.unique(labels)
    ids = ids[ids > 0]
    if not len(ids):
        return np.zeros(labels.shape, bool)
    centres = ndi.center_of_mass(np.ones(labels.shape), labels, ids)
    inside = [
        bool(
            mask[
                min(int(round(y)), mask.shape[0] - 1),
                min(int(round(x)), mask.shape[1] - 1),
            ]
        )
        for y, x in centres
    ]
    return np.isin(labels, ids[np.asarray(inside, bool)])


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class FinetuneRecord:
    """What a fine-tuning run did; saved with the weights by ``save_model``."""

    base: str
    base_sha256: str | None
    pairs: list[dict]
    diameter: float
    steps: int
    seconds: float
    holdout_ap50_before: float
    holdout_ap50_after: float
    held_out: bool  # False: too few nuclei; the scores are on the trained ones

    def metadata(self) -> dict:
        return {"finetune": self.__dict__}


#: What :func:`finetune_steps` yields: ("loss", step, loss) after every
#: training step, ("score", step, held-out AP@0.5) at every look.
Event = tuple[str, int, float]


def finetune_steps(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    base: str | CompactDeepLab = "nuclei",
    time_limit: float = 180.0,
    steps: int | None = None,
    regions: Sequence[np.ndarray | None] | None = None,
    diameter: float | None = None,
    holdout: float = 0.25,
    seed: int = 0,
    lr: float = 1e-3,
) -> Generator[Event, None, CompactDeepLab]:
    """:func:`finetune` as a generator: yields :data:`Event` items, returns the model.

    Closing it (a GUI's Cancel) stops the training at the current step;
    nothing is returned and the base is untouched. Parameters are described
    at :func:`finetune`.
    """
    from .runtime import _as_model
    from .weights import sha256_file, weights_file

    if not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise ValueError(
            f"time_limit must be a positive number of seconds, got {time_limit}"
        )
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a share between 0 and 1, got {holdout}")
    checked = check_pairs(pairs, regions)
    start_model = _as_model(base)
    base_name = str(base) if isinstance(base, (str, Path)) else "model"
    base_sha = None
    if isinstance(base, (str, Path)):
        base_sha = sha256_file(weights_file(base))
    if diameter is None:
        diameter = float(np.median([nucleus_diameter(lab) for _, lab, _ in checked]))
    train_items, held_items, records = [], [], []
    train_regions, regions_used = [], []
    for i, (image, labels, region) in enumerate(checked):
        if region is None:
            region = default_region(labels, 2 * diameter)
        regions_used.append(region)
        trained, held = _holdout_split(labels, region, holdout)
        train_items.append(AnnotatedImage(str(i), image, labels))
        train_regions.append(trained)
        held_items.append((image, labels, held))
        records.append(
            {
                "shape": list(image.shape),
                "image": _digest(image),
                "labels": _digest(labels),
            }
        )
    held_out = any(held.any() for _, _, held in held_items)
    if not held_out:
        # too few nuclei to keep some aside: score on what is trained on
        held_items = [
            (img, lab, reg) for (img, lab, _), reg in zip(held_items, regions_used)
        ]
    before = _score(start_model, held_items, diameter)
    best = {"score": before, "state": None}
    scores: list[Event] = [("score", 0, before)]
    last_step = 0

    def on_checkpoint(model: CompactDeepLab, step: int) -> None:
        score = _score(model, held_items, diameter)
        scores.append(("score", step, score))
        if score > best["score"]:
            best.update(score=score, state=_state(model))

    started = time.perf_counter()
    training = train_steps(
        train_items,
        regions=train_regions,
        init=start_model,
        seed=seed,
        steps=steps,
        lr=lr,
        batch_size=4,
        patch=128,
        ema_decay=0.99,
        time_limit=time_limit,
        checkpoint_every=_EVAL_EVERY,
        on_checkpoint=on_checkpoint,
        log_every=10**9,
    )
    while True:
        yield from scores
        scores.clear()
        try:
            last_step, loss = next(training)
        except StopIteration as done:
            model = done.value
            break
        yield "loss", last_step, loss
    seconds = time.perf_counter() - started
    on_checkpoint(model, last_step)  # the final weights compete too
    yield from scores
    model.load_state_dict(
        best["state"] if best["state"] is not None else start_model.state_dict()
    )
    model.eval()
    model.finetune_record = FinetuneRecord(
        base=base_name,
        base_sha256=base_sha,
        pairs=records,
        diameter=float(diameter),
        steps=last_step,
        seconds=round(seconds, 1),
        holdout_ap50_before=round(before, 4),
        holdout_ap50_after=round(best["score"], 4),
        held_out=held_out,
    )
    return model


@forwards_options(finetune_steps)
def finetune(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    on_loss: Callable[[int, float], None] | None = None,
    on_score: Callable[[int, float], None] | None = None,
    **options: Any,
) -> CompactDeepLab:
    """Fine-tune ``base`` on painted nuclei; return the better of before and after.

    Parameters
    ----------
    pairs : sequence of (image, labels)
        2-D images and their instance labels (0 = background), same shapes.
    **options
        Those of :func:`finetune_steps`, which are:
    base : str or CompactDeepLab
        The model to start from (a registered name, a weights file or a
        model); it is left untouched.
    time_limit : float
        Seconds of training (default 3 minutes); ``steps`` caps the steps.
    regions : sequence of bool arrays (or None), optional
        Where each pair's labels are complete (a drawn rectangle or
        polygon); None: the painted nuclei's bounding box grown by two
        nucleus diameters. Pixels outside weigh nothing in the loss.
    diameter : float, optional
        Nucleus diameter in pixels; None: measured from the labels.
    holdout : float
        Share of each region's nuclei (the lowest in the image) kept aside
        with the part of the region below them, to score the model (AP@0.5)
        before, during and after training. With too few nuclei to keep any
        aside, the scores are on the training nuclei (the record says so).
    seed, lr
        Random seed of the crops; peak learning rate.
    progress : callable(done, total), optional
        Called after every training step (:mod:`napari_pyramids.progress`):
        ``done`` steps of ``total``, the ``steps`` cap, or 0 when only
        ``time_limit`` bounds the training (the default; training may also
        end before the cap when the time is spent).
    cancel : callable() -> bool, optional
        Checked after every training step but the last; True stops the
        training and raises :class:`FinetuneCancelled` (a
        :class:`~napari_pyramids.progress.Cancelled`).
    on_loss : callable(step, loss), optional
        Called with every training step's loss (live plots).
    on_score : callable(step, ap50), optional
        Called with the held-out AP@0.5 before training (step 0) and at each
        look during it (live plots).

    Returns
    -------
    CompactDeepLab
        In eval mode, with ``finetune_record`` (:class:`FinetuneRecord`): the
        held-out AP@0.5 before and after, steps and time. When training did
        not beat the base on the held-out part, the base's weights are
        returned (the scores say so).
    """
    events = finetune_steps(pairs, **options)
    total = step_cap(finetune_steps, options)
    report = reporter(events, progress, cancel, FinetuneCancelled)

    def handle(event: Event) -> None:
        kind, step, value = event
        callback = on_loss if kind == "loss" else on_score
        if callback is not None:
            callback(step, value)
        if kind == "loss":
            report(step, total)

    return drain(events, handle)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
