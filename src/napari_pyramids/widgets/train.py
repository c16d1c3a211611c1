"""The Train nuclei model widget: fine-tune on painted labels, with a live plot.

The work is :func:`napari_pyramids.actions.train.run`; this module gathers the
image/labels pairs and the region, and plots loss and held-out score as they
come. The trained model is listed in the Segment widget from then on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, FileEdit, Label, PushButton

from napari_pyramids.actions import Job, Step
from napari_pyramids.actions import train as action
from napari_pyramids.actions.segment import model_names
from napari_pyramids.actions.train import TrainSettings, TrainStep
from napari_pyramids.layers import layer_kind, region_mask, source_from_layer
from napari_pyramids.widgets._base import JobWidget, control, layer_picker
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
        import napari

        self.image = layer_picker(
            napari.layers.Image,
            "image",
            "an image layer with nuclei painted in the labels layer",
        )
        self.labels_layer = layer_picker(
            napari.layers.Labels,
            "labels",
            "the nuclei painted on the image, one label each",
        )
        self.add_pair = PushButton(
            text="add pair", tooltip="keep this image / labels pair for the training"
        )
        self.clear_pairs = PushButton(
            text="clear pairs", tooltip="forget the pairs added so far"
        )
        self.pairs_label = Label(value=NO_PAIRS)
        self.region = ComboBox(
            label="region",
            choices=self._regions,
            tooltip="a Shapes layer whose shapes mark where the labels are complete; "
            "by default the box around the painted nuclei plus a margin",
        )
        bases = lambda *_: model_names()  # noqa: E731 (magicgui passes the widget)
        self.base = control(TrainSettings, "base", ComboBox, choices=bases)
        self.time_limit = control(TrainSettings, "time_limit")
        self.model_name = control(TrainSettings, "name")
        weights = "Weights (*.safetensors)"
        self.save_to = control(
            TrainSettings, "path", FileEdit, mode="w", filter=weights
        )
        self._pairs: list[tuple[str, str]] = []
        self.add_pair.changed.connect(self._on_add_pair)
        self.clear_pairs.changed.connect(self._on_clear_pairs)
        self.extend([self.image, self.labels_layer, self.add_pair, self.clear_pairs])
        self.extend([self.pairs_label, self.region, self.base, self.time_limit])
        self.extend([self.model_name, self.save_to])
        self._plot = LivePlot(
            "step",
            {
                "loss": {"name": "loss", "color": "#5aa9e6", "width": 1},
                "score": {"name": "held-out AP@0.5", "color": "#f4a259", "width": 2}
                | {"symbol": "o", "symbolSize": 5},
            },
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
            for key, value in (("loss", step.loss), ("score", step.score)):
                if value is not None:
                    self._plot.add(key, step.step, value)

    def _start_worker(self, job: Job):
        self._plot.clear()
        worker = super()._start_worker(job)
        worker.yielded.connect(self._on_train_step)
        return worker

    def prepare(self) -> Job:
        layers = self._viewer.layers
        image, labels = self.image.value, self.labels_layer.value
        names = self._pairs or [
            (getattr(image, "name", None), getattr(labels, "name", None))
        ]
        if any(n is None or n not in layers for pair in names for n in pair):
            raise ValueError("choose an image layer and the Labels layer painted on it")
        shapes = None if self.region.value == NO_REGION else layers[self.region.value]
        pairs, regions = [], []
        for image_name, labels_name in names:
            plane = action.grey_plane(source_from_layer(layers[image_name]))
            pairs.append((plane, np.asarray(layers[labels_name].data)))
            region = None if shapes is None else region_mask(shapes, layers[image_name])
            regions.append(region)
        chosen = str(self.save_to.value or "")
        settings = self.from_controls(
            TrainSettings, path=chosen if chosen not in ("", ".") else None
        )
        return action.run(pairs, regions if shapes is not None else None, settings)
