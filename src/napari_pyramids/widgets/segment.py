"""The Segment widget: nuclei instance labels from an image layer (ASPP model).

The work is :func:`napari_pyramids.actions.segment.run`; this module turns the
controls into :class:`~napari_pyramids.actions.segment.SegmentSettings` and
saves the measurements. torch loads when the widget is first opened, not when
napari starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    PushButton,
    SpinBox,
    create_widget,
)

from napari_pyramids.actions import Job
from napari_pyramids.actions import segment as action
from napari_pyramids.actions.segment import (
    SegmentSettings,
    default_axes,
    diameter_in_pixels,
    physical_unit,
)
from napari_pyramids.layers import source_from_layer
from napari_pyramids.nn.rescale import TRAINED_DIAMETER
from napari_pyramids.widgets._base import JobWidget, explain
from napari_pyramids.widgets._settings import remember

if TYPE_CHECKING:
    import napari

#: The model choice that reads a weights file instead of a registered model.
CHECKPOINT = "checkpoint file…"
RGB_CHANNELS = {"red": 0, "green": 1, "blue": 2}
_NO_CHANNEL = -1


class SegmentWidget(JobWidget):
    """Plugins > napari-pyramids > Segment nuclei (ASPP).

    Pick a fluorescence image layer (for RGB, the channel with the nuclear
    stain), a model (the shipped "nuclei" or a checkpoint file) and a device,
    and give the nucleus diameter (in pixels, or in the layer's unit when it
    has a physical scale) or let the model estimate it. The image is
    segmented tile by tile off the GUI thread, with a progress bar per tile;
    Cancel stops between tiles and adds nothing. Results are a Labels
    layer "<image> <model> labels" on the image's grid and, when asked, the
    interior and boundary probabilities and one layer per ASPP branch (each
    atrous rate and the image pooling), all aligned with the image.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)
        import napari

        from napari_pyramids.nn.infer import available_devices, resolve_device

        self.image = create_widget(annotation=napari.layers.Image, label="image")
        self.channel = ComboBox(
            label="channel",
            choices=[("choose the nuclear stain…", _NO_CHANNEL)]
            + list(RGB_CHANNELS.items()),
            value=_NO_CHANNEL,
        )
        self.model = ComboBox(label="model", choices=self._model_choices)
        self.checkpoint = FileEdit(
            label="checkpoint",
            mode="r",
            filter="Weights (*.safetensors *.pt *.pth)",
        )
        auto = str(resolve_device("auto"))
        self.device = ComboBox(
            label="device",
            choices=[
                (f"auto ({auto})" if d == "auto" else d, d) for d in available_devices()
            ],
            value=SegmentSettings.device,
        )
        defaults = SegmentSettings()
        self.tile_size = SpinBox(
            label="tile size", min=128, max=8192, step=64, value=defaults.tile_size
        )
        self.threshold = FloatSpinBox(
            label="core threshold",
            min=0.05,
            max=0.95,
            step=0.05,
            value=defaults.threshold,
        )
        self.estimate = CheckBox(text="estimate nucleus diameter", value=True)
        self.diameter = FloatSpinBox(
            label="nucleus diameter",
            min=0.5,
            max=100_000.0,
            step=1.0,
            value=TRAINED_DIAMETER,
        )
        self.unit = ComboBox(label="unit", choices=["px"], value="px")
        self.min_size = SpinBox(
            label="smallest nucleus (px)", min=0, max=100_000, value=0
        )
        self.axes = ComboBox(label="axes", choices=["yx"])
        self.link = CheckBox(text="link nuclei through time", value=defaults.link)
        self.save_csv = PushButton(
            text="save measurements (CSV)…",
            tooltip="the per-nucleus table of the last labels (also in napari's "
            "features table, and npp.measure from the console)",
        )
        self.probabilities = CheckBox(
            text="add probabilities", value=defaults.probabilities
        )
        self.branches = CheckBox(text="show ASPP branches", value=defaults.branches)
        explain(
            SegmentSettings,
            channel=self.channel,
            model=self.model,
            device=self.device,
            tile_size=self.tile_size,
            threshold=self.threshold,
            diameter=self.diameter,
            min_size=self.min_size,
            axes=self.axes,
            link=self.link,
            probabilities=self.probabilities,
            branches=self.branches,
        )
        self.estimate.tooltip = self.unit.tooltip = self.diameter.tooltip
        self.checkpoint.tooltip = self.model.tooltip
        self.extend(
            [
                self.image,
                self.channel,
                self.model,
                self.checkpoint,
                self.device,
                self.tile_size,
                self.threshold,
                self.estimate,
                self.diameter,
                self.unit,
                self.min_size,
                self.axes,
                self.link,
                self.probabilities,
                self.branches,
            ]
        )
        self._finish()
        self.append(self.save_csv)
        self.save_csv.changed.connect(self._ask_csv_path)
        devices = available_devices()
        remember("segment", self.device, "device", valid=devices.__contains__)
        remember("segment", self.tile_size, "tile_size")
        self.image.changed.connect(self._sync)
        self.model.changed.connect(self._sync)
        self.estimate.changed.connect(self._sync)
        self.axes.changed.connect(self._sync)
        self._sync()

    def _model_choices(self, *_):
        """Shipped models, the user's trained ones (Train widget), a file."""
        from napari_pyramids.nn import user_models
        from napari_pyramids.nn.weights import REGISTRY

        return [*REGISTRY, *user_models.user_models(), CHECKPOINT]

    def _sync(self, *_):
        """Show the controls that apply: RGB channel, checkpoint file, diameter."""
        layer = self.image.value
        self.channel.visible = bool(layer is not None and layer.rgb)
        self.checkpoint.visible = self.model.value == CHECKPOINT
        self.diameter.enabled = self.unit.enabled = not self.estimate.value
        try:
            source = source_from_layer(layer)
        except (TypeError, ValueError):  # no layer yet, or an empty one
            source = None
        unit = None if source is None else physical_unit(source)
        stack = source is not None and not source.rgb and source.spatial_ndim > 2
        ndim = source.spatial_ndim if stack else 2
        axes = [a for a in ("yx", "zyx", "tyx", "tzyx") if len(a) == ndim] or ["yx"]
        if list(self.axes.choices) != axes:
            self.axes.choices = axes
            self.axes.value = default_axes(source) if stack else "yx"
        self.axes.visible = stack
        self.link.visible = stack and "t" in (self.axes.value or "")
        choices = ["px"] if unit is None else ["px", unit]
        if list(self.unit.choices) != choices:
            keep = self.unit.value if self.unit.value in choices else "px"
            self.unit.choices = choices
            self.unit.value = keep

    def settings(self) -> SegmentSettings:
        from napari_pyramids.nn import user_models

        model = user_models.resolve(self.model.value)
        if self.model.value == CHECKPOINT:
            path = self.checkpoint.value
            if path is None or not Path(path).is_file():
                raise ValueError("choose a weights file (.safetensors, .pt, .pth)")
            model = str(path)
        channel = self.channel.value
        diameter = None
        if not self.estimate.value:
            source = source_from_layer(self.image.value)
            diameter = diameter_in_pixels(self.diameter.value, self.unit.value, source)
        return SegmentSettings(
            model=model,
            device=self.device.value,
            tile_size=self.tile_size.value,
            threshold=self.threshold.value,
            diameter=diameter,
            min_size=self.min_size.value or None,
            channel=None if channel == _NO_CHANNEL else channel,
            probabilities=self.probabilities.value,
            branches=self.branches.value,
            axes=self.axes.value or "yx",
            link=self.link.value and "t" in (self.axes.value or ""),
        )

    def save_measurements(self, path: str | Path) -> Path:
        """Write the last labels' per-nucleus table to a CSV file."""
        from napari.layers import Labels

        labels = [layer for layer in self.last_layers if isinstance(layer, Labels)]
        if not labels:
            raise ValueError("segment an image first: there are no labels to measure")
        path = Path(path)
        labels[-1].features.to_csv(path, index=False)
        return path

    def _ask_csv_path(self, *_):
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self.native, "Save measurements", "measurements.csv", "CSV (*.csv)"
        )
        if path:
            try:
                self._set_status(
                    f"Measurements saved to {self.save_measurements(path)}"
                )
            except (ValueError, OSError) as err:
                self._report_error(err)

    def prepare(self) -> Job:
        return action.run(source_from_layer(self.image.value), self.settings())
