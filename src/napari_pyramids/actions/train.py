"""The Train action: fine-tune a nuclei model on painted labels and save it.

It runs :func:`napari_pyramids.nn.finetune.finetune_steps`, yields one
:class:`TrainStep` a quarter of a second (the loss) and one per held-out
score, then saves the model and lists it among the user models, where the
Segment action finds it by name. torch loads when the job starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_pyramids.actions.base import Job, Result, Settings, Step, setting
from napari_pyramids.layers import Source

#: Seconds between two loss reports: every step would keep a GUI thread (and
#: the GIL) so busy drawing that training slows several times over.
REPORT_EVERY = 0.25


@dataclass(frozen=True)
class TrainStep(Step):
    """A training step: its number, the loss, or the held-out AP@0.5 measured."""

    step: int = 0
    loss: float | None = None
    score: float | None = None


@dataclass(frozen=True)
class TrainSettings(Settings):
    """What to train and where to keep it."""

    name: str = setting(
        "my nuclei",
        "the new model's name, as the Segment widget will list it",
        label="name",
    )
    base: str = setting(
        "nuclei",
        "the model to start from: a registered name, a user model's name or a "
        "weights file",
        label="base model",
    )
    time_limit: int = setting(
        180,
        "seconds of training; the held-out score picks the best weights",
        label="time budget (s)",
        limits=(5, 24 * 3600),
        step=30,
    )
    path: str | None = setting(
        None,
        "the .safetensors file to save to; none: napari-pyramids' user models "
        "folder. Either way the model is listed in Segment",
        label="save to",
    )

    def check(self) -> None:
        if not self.name.strip():
            raise ValueError("give the new model a name")
        if self.time_limit <= 0:
            raise ValueError(f"the time budget must be positive, got {self.time_limit}")


@dataclass(frozen=True)
class TrainResult(Result):
    """The status line, the fine-tuning record and where the model was saved."""

    record: Any = None
    path: Path | None = None


def grey_plane(source: Source) -> np.ndarray:
    """The pixels of ``source`` if it is one 2-D grey image, as training takes."""
    if source.rgb or source.spatial_ndim != 2:
        raise ValueError(
            f"{source.name!r} is not one 2-D grey image; add the nuclear stain "
            "channel (or plane) as its own layer first"
        )
    return np.asarray(source.data)


def run(pairs, regions, settings: TrainSettings) -> Job:
    """Check the pairs and settings; return the job that fine-tunes and saves.

    ``pairs`` are ``(image, labels)`` 2-D arrays; ``regions`` (or None) one
    bool mask per pair marking where its labels are complete.
    """
    from napari_pyramids.nn import user_models

    name = settings.name.strip()
    target = Path(settings.path) if settings.path else user_models.new_model_path(name)
    if name in user_models.user_models() or target.exists():
        raise ValueError(
            f"a model called {name!r} (or the file {target}) exists already; pick "
            "another name or file"
        )
    if target.suffix.lower() != ".safetensors":
        raise ValueError(f"{target}: models are saved as .safetensors files")
    if not pairs:
        raise ValueError("add at least one image / labels pair")
    from napari_pyramids.nn.finetune import check_pairs

    check_pairs(pairs, regions)  # every bad input named before anything runs
    return Job(
        description=f"Train {name!r} from {settings.base}",
        steps=_train_steps(pairs, regions, settings, name, target),
    )


def _train_steps(pairs, regions, settings: TrainSettings, name: str, target: Path):
    """Fine-tune, yielding steps; save and register the model at the end.

    Closing the generator (Cancel) stops the training at its current step
    (within a quarter of a second: steps are reported that often) and writes
    nothing.
    """
    from napari_pyramids.nn import user_models
    from napari_pyramids.nn.finetune import finetune_steps
    from napari_pyramids.nn.weights import save_model, sha256_file

    start = last = time.perf_counter()
    total = int(settings.time_limit)
    events = finetune_steps(
        pairs,
        base=user_models.resolve(settings.base),
        time_limit=settings.time_limit,
        regions=regions,
    )
    while True:
        try:
            kind, step, value = next(events)
        except StopIteration as done:
            model = done.value
            break
        now = time.perf_counter()
        elapsed = min(total, int(now - start))
        if kind == "loss":
            if now - last < REPORT_EVERY:
                continue  # a GUI gets a few steps a second, not every one
            last = now
            message = f"training: step {step}, loss {value:.3f}"
            yield TrainStep(elapsed, total, message, step=step, loss=value)
        else:
            message = f"training: step {step}, held-out AP@0.5 {value:.2f}"
            yield TrainStep(elapsed, total, message, step=step, score=value)
    path = save_model(model, target, name=name)
    user_models.register(name, path, sha256_file(path))
    record = model.finetune_record
    summary = (
        f"AP@0.5 {record.holdout_ap50_before:.2f} -> "
        f"{record.holdout_ap50_after:.2f} on the held-out part "
        f"({record.steps} steps, {record.seconds:.0f} s); saved as "
        f"{name!r} ({path}), now in Segment's model list."
    )
    return TrainResult([], summary, record, path)
