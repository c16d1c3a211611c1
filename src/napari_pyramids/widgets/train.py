"""The Train nuclei model widget: painted pairs to a model, with a live plot."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, FileEdit, Label, PushButton

from napari_pyramids.actions import Job, Step
from napari_pyramids.actions import train as action
from napari_pyramids.actions.segment import model_names
from napari_pyramids.actions.train import TrainSettings, TrainStep
from napari_pyramids.layers import layer_kind, region_mask, source_from_layer
from napari_pyramids.widgets._base import JobWidget, control, layer_picker, live_choices
from napari_pyramids.widgets._plot import LivePlot

if TYPE_CHECKING:
    import napari

#: The region choice that means "the painted nuclei's box plus a margin".
NO_REGION = "painted nuclei (box + margin)"
NO_PAIRS = "pairs: (the selected image and labels)"


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
        self.image = layer_picker(
            "image", "image", "an image layer with nuclei painted in the labels layer"
        )
        self.labels_layer = layer_picker(
            "labels", "labels", "the nuclei painted on the image, one label each"
        )
        self.add_pair = PushButton(text="add pair")
        self.add_pair.tooltip = "keep this image / labels pair for the training"
        self.clear_pairs = PushButton(text="clear pairs")
        self.clear_pairs.tooltip = "forget the pairs added so far"
        self.pairs_label = Label(value=NO_PAIRS)
        self.region = ComboBox(
            label="region",
            choices=self._regions,
            tooltip="a Shapes layer whose shapes mark where the labels are complete; "
            "by default the box around the painted nuclei plus a margin",
        )
        bases = live_choices(model_names)
        self.base = control(TrainSettings, "base", ComboBox, choices=bases)
        self.time_limit = control(TrainSettings, "time_limit")
        self.model_name = control(TrainSettings, "name")
        weights = {"mode": "w", "filter": "Weights (*.safetensors)"}
        self.save_to = control(TrainSettings, "path", FileEdit, **weights)
        self._pairs: list[tuple[str, str]] = []
        self.add_pair.changed.connect(self._on_add_pair)
        self.clear_pairs.changed.connect(self._on_clear_pairs)
        self.extend([self.image, self.labels_layer, self.add_pair, self.clear_pairs])
        self.extend([self.pairs_label, self.region, self.base, self.time_limit])
        self.extend([self.model_name, self.save_to])
        self._plot = LivePlot(
            "step",
            loss=("loss", "#5aa9e6", 1),
            score=("held-out AP@0.5", "#f4a259", 2, "o"),
        )
        self._curves = self._plot.curves
        self.native.layout().addWidget(self._plot.native)
        self._finish()

    def _regions(self, *_) -> list[str]:
        layers = self._viewer.layers
        return [NO_REGION, *(s.name for s in layers if layer_kind(s) == "shapes")]

    def _on_add_pair(self, *_):
        image, labels = self.image.value, self.labels_layer.value
        if image is None or labels is None:
            self._set_status("choose an image and a Labels layer first")
            return
        if (image.name, labels.name) not in self._pairs:
            self._pairs.append((image.name, labels.name))
        shown = "; ".join(f"{i} + {lab}" for i, lab in self._pairs)
        self.pairs_label.value = f"pairs: {shown}"

    def _on_clear_pairs(self, *_):
        self._pairs.clear()
        self.pairs_label.value = NO_PAIRS

    def _on_train_step(self, step: Step) -> None:
        if isinstance(step, TrainStep):
            self._plot.add(step.step, loss=step.loss, score=step.score)

    def _start_worker(self, job: Job):
        self._plot.clear()
        worker = super()._start_worker(job)
        worker.yielded.connect(self._on_train_step)
        return worker

    def prepare(self) -> Job:
        layers = self._viewer.layers
        chosen = (self.image.value, self.labels_layer.value)
        names = self._pairs or [tuple(getattr(c, "name", None) for c in chosen)]
        if any(n is None or n not in layers for pair in names for n in pair):
            raise ValueError("choose an image layer and the Labels layer painted on it")
        planes = [action.grey_plane(source_from_layer(layers[i])) for i, _ in names]
        pairs = [(p, np.asarray(layers[j].data)) for p, (_, j) in zip(planes, names)]
        regions = None  # the painted nuclei's box and a margin
        if self.region.value != NO_REGION:
            shapes = layers[self.region.value]
            regions = [region_mask(shapes, layers[i]) for i, _ in names]
        chosen = str(self.save_to.value or "")
        path = None if chosen in ("", ".") else chosen  # no file: the user models
        return action.run(pairs, regions, self.from_controls(TrainSettings, path=path))
