"""The Train nuclei model widget: fine-tune on painted labels, with a live plot.

:func:`make_train_job` holds the work (GUI-free: it runs
:func:`napari_pyramids.nn.finetune.finetune` and yields one step per training
step); :class:`TrainWidget` gathers the image/labels pairs, the region, the
base model and the time budget, and plots loss and held-out score as they
come. The trained model is saved to the user models folder and listed in the
Segment widget from then on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    ComboBox,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    create_widget,
)

from napari_pyramids.layers import source_from_layer
from napari_pyramids.widgets._base import Job, JobWidget, Step

if TYPE_CHECKING:
    import napari

#: The region choice that means "the painted nuclei's box plus a margin".
NO_REGION = "painted nuclei (box + margin)"
#: Seconds between two progress reports: every step would keep the GUI thread
#: (and the GIL) so busy drawing that training slows several times over.
_REPORT_EVERY = 0.25


@dataclass(frozen=True)
class TrainStep(Step):
    """A training step: its number, the loss, or the held-out AP@0.5 measured."""

    step: int = 0
    loss: float | None = None
    score: float | None = None


@dataclass(frozen=True)
class TrainSettings:
    """What to train (validated by :func:`make_train_job`)."""

    name: str = "my nuclei"
    base: str = "nuclei"  # a registered name or a weights file
    time_limit: int = 180  # seconds
    path: str | None = None  # where to save; None: the user models folder


def _plane(layer) -> np.ndarray:
    source = source_from_layer(layer)
    if source.rgb or source.spatial_ndim != 2:
        raise ValueError(
            f"{layer.name!r} is not one 2-D grey image; add the nuclear stain "
            "channel (or plane) as its own layer first"
        )
    return np.asarray(source.data)


def region_mask(shapes_layer, image_layer) -> np.ndarray:
    """The union of a Shapes layer's shapes as a mask on the image's grid."""
    if not np.allclose(
        shapes_layer.scale[-2:], image_layer.scale[-2:]
    ) or not np.allclose(shapes_layer.translate[-2:], image_layer.translate[-2:]):
        raise ValueError(
            f"draw the region on a Shapes layer with the scale and translate of "
            f"{image_layer.name!r}"
        )
    shape = image_layer.data.shape[-2:]
    if not len(shapes_layer.data):
        raise ValueError(f"the region layer {shapes_layer.name!r} has no shapes")
    masks = shapes_layer.to_masks(mask_shape=shape)
    mask = np.asarray(masks).any(axis=0)
    if not mask.any():
        raise ValueError(f"the region {shapes_layer.name!r} lies outside the image")
    return mask


def make_train_job(pairs, regions, settings: TrainSettings) -> Job:
    """Validate ``settings``; return the job that fine-tunes and saves the model."""
    from napari_pyramids.nn import user_models

    name = settings.name.strip()
    if not name:
        raise ValueError("give the new model a name")
    target = Path(settings.path) if settings.path else user_models.new_model_path(name)
    if name in user_models.user_models() or target.exists():
        raise ValueError(
            f"a model called {name!r} (or the file {target}) exists already; pick "
            "another name or file"
        )
    if target.suffix.lower() != ".safetensors":
        raise ValueError(f"{target}: models are saved as .safetensors files")
    if settings.time_limit <= 0:
        raise ValueError(f"the time budget must be positive, got {settings.time_limit}")
    if not pairs:
        raise ValueError("add at least one image / labels pair")
    from napari_pyramids.nn.finetune import check_pairs

    check_pairs(pairs, regions)  # every bad input named before anything runs
    result: dict = {}

    def on_done(_tuples) -> str:
        record = result["record"]
        return (
            f"AP@0.5 {record.holdout_ap50_before:.2f} -> "
            f"{record.holdout_ap50_after:.2f} on the held-out part "
            f"({record.steps} steps, {record.seconds:.0f} s); saved as "
            f"{name!r} ({result['path']}), now in Segment's model list."
        )

    return Job(
        run=lambda: train_job(pairs, regions, settings, name, result),
        description=f"Train {name!r} from {settings.base}",
        on_done=on_done,
    )


def train_job(pairs, regions, settings: TrainSettings, name: str, result: dict):
    """Fine-tune, yielding each step; save and register the model at the end.

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
        pairs, base=settings.base, time_limit=settings.time_limit, regions=regions
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
            if now - last < _REPORT_EVERY:
                continue  # the GUI gets a few steps a second, not every one
            last = now
            message = f"training: step {step}, loss {value:.3f}"
            yield TrainStep(elapsed, total, message, step=step, loss=value)
        else:
            message = f"training: step {step}, held-out AP@0.5 {value:.2f}"
            yield TrainStep(elapsed, total, message, step=step, score=value)
    target = settings.path or user_models.new_model_path(name)
    path = save_model(model, target, name=name)
    user_models.register(name, path, sha256_file(path))
    result.update(record=model.finetune_record, path=path)
    return []


class TrainWidget(JobWidget):
    """Plugins > napari-pyramids > Train nuclei model.

    Pick an image layer and the Labels layer you painted or corrected on it,
    press *add pair* (several pairs may be added; with none added, the
    selected pair is used), optionally a Shapes layer whose shapes mark where
    the labels are complete, the base model, the time budget and a name, and
    press Train. Loss and held-out AP@0.5 are plotted live; Cancel stops at
    the next step and saves nothing. The model is saved to the user models
    folder and appears in the Segment widget's model list.
    """

    run_label = "Train"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)
        import napari

        self.image = create_widget(annotation=napari.layers.Image, label="image")
        self.labels_layer = create_widget(
            annotation=napari.layers.Labels, label="labels"
        )
        self.add_pair = PushButton(text="add pair")
        self.clear_pairs = PushButton(text="clear pairs")
        self.pairs_label = Label(value="pairs: (the selected image and labels)")
        self.region = ComboBox(label="region", choices=self._region_choices)
        self.base = ComboBox(label="base model", choices=self._base_choices)
        self.time_limit = SpinBox(
            label="time budget (s)",
            min=5,
            max=24 * 3600,
            step=30,
            value=TrainSettings.time_limit,
            tooltip="seconds of training; the held-out score picks the best weights",
        )
        self.model_name = LineEdit(label="name", value=TrainSettings.name)
        self.save_to = FileEdit(
            label="save to",
            mode="w",
            filter="Weights (*.safetensors)",
            tooltip="leave empty to keep the model in napari-pyramids' user "
            "models folder; either way it is listed in Segment",
        )
        self.region.tooltip = (
            "a Shapes layer whose shapes mark where the labels are complete; "
            "by default the box around the painted nuclei plus a margin"
        )
        self.base.tooltip = "the model to start from"
        self.add_pair.tooltip = "keep this image / labels pair for the training"
        self._pairs: list[tuple[str, str]] = []
        self.add_pair.changed.connect(self._on_add_pair)
        self.clear_pairs.changed.connect(self._on_clear_pairs)
        self.extend(
            [
                self.image,
                self.labels_layer,
                self.add_pair,
                self.clear_pairs,
                self.pairs_label,
                self.region,
                self.base,
                self.time_limit,
                self.model_name,
                self.save_to,
            ]
        )
        self._plot, self._curves = self._make_plot()
        self.native.layout().addWidget(self._plot)
        self._finish()

    # ------------------------------------------------------------ choices
    def _region_choices(self, *_):
        import napari

        shapes = [
            (layer.name, layer.name)
            for layer in self._viewer.layers
            if isinstance(layer, napari.layers.Shapes)
        ]
        return [(NO_REGION, NO_REGION), *shapes]

    def _base_choices(self, *_):
        from napari_pyramids.nn import user_models
        from napari_pyramids.nn.weights import REGISTRY

        return [*REGISTRY, *user_models.user_models()]

    def _on_add_pair(self, *_):
        image, labels = self.image.value, self.labels_layer.value
        if image is None or labels is None:
            self._set_status("choose an image and a Labels layer first")
            return
        pair = (image.name, labels.name)
        if pair not in self._pairs:
            self._pairs.append(pair)
        self.pairs_label.value = "pairs: " + "; ".join(
            f"{i} + {lab}" for i, lab in self._pairs
        )

    def _on_clear_pairs(self, *_):
        self._pairs.clear()
        self.pairs_label.value = "pairs: (the selected image and labels)"

    # --------------------------------------------------------------- plot
    def _make_plot(self):
        import pyqtgraph as pg

        plot = pg.PlotWidget()
        plot.setMinimumHeight(160)
        plot.setBackground("#262930")  # napari's dark canvas colour
        plot.addLegend(offset=(5, 5))
        plot.setLabel("bottom", "step")
        loss = plot.plot([], [], pen=pg.mkPen("#5aa9e6", width=1), name="loss")
        score = plot.plot(
            [],
            [],
            pen=pg.mkPen("#f4a259", width=2),
            symbol="o",
            symbolSize=5,
            name="held-out AP@0.5",
        )
        return plot, {"loss": (loss, [], []), "score": (score, [], [])}

    def _on_train_step(self, step: Step) -> None:
        if not isinstance(step, TrainStep):
            return
        for key, value in (("loss", step.loss), ("score", step.score)):
            if value is None:
                continue
            curve, xs, ys = self._curves[key]
            xs.append(step.step)
            ys.append(value)
            curve.setData(xs, ys)

    def _start_worker(self, job: Job):
        for curve, xs, ys in self._curves.values():
            xs.clear()
            ys.clear()
            curve.setData([], [])
        worker = super()._start_worker(job)
        worker.yielded.connect(self._on_train_step)
        return worker

    # ---------------------------------------------------------------- job
    def prepare(self) -> Job:
        layers = self._viewer.layers
        names = self._pairs or [
            (
                getattr(self.image.value, "name", None),
                getattr(self.labels_layer.value, "name", None),
            )
        ]
        if any(n is None or n not in layers for pair in names for n in pair):
            raise ValueError("choose an image layer and the Labels layer painted on it")
        pairs, regions = [], []
        shapes = None if self.region.value == NO_REGION else layers[self.region.value]
        for image_name, labels_name in names:
            image_layer, labels_layer = layers[image_name], layers[labels_name]
            pairs.append((_plane(image_layer), np.asarray(labels_layer.data)))
            regions.append(None if shapes is None else region_mask(shapes, image_layer))
        chosen = self.save_to.value
        settings = TrainSettings(
            name=self.model_name.value,
            base=self.base.value,
            time_limit=self.time_limit.value,
            path=str(chosen) if chosen and str(chosen) not in ("", ".") else None,
        )
        base = settings.base
        from napari_pyramids.nn import user_models

        saved = user_models.user_models()
        if base in saved:
            settings = TrainSettings(
                settings.name, saved[base]["path"], settings.time_limit, settings.path
            )
        return make_train_job(pairs, regions if shapes is not None else None, settings)
