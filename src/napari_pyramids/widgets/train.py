"""The Train nuclei model widget: fine-tune on painted labels, with a live plot.

The work is :func:`napari_pyramids.actions.train.run`; this module gathers the
image/labels pairs, the region, the base model, the time budget and the name,
and plots loss and held-out score as they come. The trained model is saved to
the user models folder and listed in the Segment widget from then on.
"""

from __future__ import annotations

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

from napari_pyramids.actions import Job, Step
from napari_pyramids.actions import train as action
from napari_pyramids.actions.train import TrainSettings, TrainStep
from napari_pyramids.layers import region_mask, source_from_layer
from napari_pyramids.widgets._base import JobWidget, explain

if TYPE_CHECKING:
    import napari

#: The region choice that means "the painted nuclei's box plus a margin".
NO_REGION = "painted nuclei (box + margin)"


def _plane(layer) -> np.ndarray:
    source = source_from_layer(layer)
    if source.rgb or source.spatial_ndim != 2:
        raise ValueError(
            f"{layer.name!r} is not one 2-D grey image; add the nuclear stain "
            "channel (or plane) as its own layer first"
        )
    return np.asarray(source.data)


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
        )
        self.model_name = LineEdit(label="name", value=TrainSettings.name)
        self.save_to = FileEdit(
            label="save to", mode="w", filter="Weights (*.safetensors)"
        )
        explain(
            TrainSettings,
            name=self.model_name,
            base=self.base,
            time_limit=self.time_limit,
            path=self.save_to,
        )
        self.region.tooltip = (
            "a Shapes layer whose shapes mark where the labels are complete; "
            "by default the box around the painted nuclei plus a margin"
        )
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
        return action.run(pairs, regions if shapes is not None else None, settings)
