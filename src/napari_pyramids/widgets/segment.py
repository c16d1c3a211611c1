"""The Segment widget; torch loads when it is first opened, not when napari starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, FileEdit

from napari_pyramids.actions import Job
from napari_pyramids.actions import segment as action
from napari_pyramids.actions.segment import CHECKPOINT, SegmentSettings
from napari_pyramids.layers import source_from_layer
from napari_pyramids.nn.rescale import TRAINED_DIAMETER
from napari_pyramids.widgets._base import (
    JobWidget,
    control,
    layer_picker,
    live_choices,
    offer,
)
from napari_pyramids.widgets._settings import remember

if TYPE_CHECKING:
    import napari

RGB_CHANNELS = {"red": 0, "green": 1, "blue": 2}


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
        self.image = layer_picker(
            "image",
            "image",
            "the fluorescence image layer to segment (by default the latest one)",
        )
        channels = [("choose the nuclear stain…", None), *RGB_CHANNELS.items()]
        self.channel = control(SegmentSettings, "channel", ComboBox, choices=channels)
        models = live_choices(action.model_choices)
        self.model = control(SegmentSettings, "model", ComboBox, choices=models)
        weights = "Weights (*.safetensors *.pt *.pth)"
        self.checkpoint = FileEdit(label="checkpoint", mode="r", filter=weights)
        devices = action.device_choices()
        self.device = control(SegmentSettings, "device", ComboBox, choices=devices)
        self.tile_size = control(SegmentSettings, "tile_size")
        self.threshold = control(SegmentSettings, "threshold")
        self.estimate = CheckBox(text="estimate nucleus diameter", value=True)
        self.diameter = control(SegmentSettings, "diameter", value=TRAINED_DIAMETER)
        self.unit = ComboBox(label="unit", choices=["px"], value="px")
        self.min_size = control(SegmentSettings, "min_size", value=0)
        self.axes = control(SegmentSettings, "axes", choices=["yx"])
        self.link = control(SegmentSettings, "link")
        self.probabilities = control(SegmentSettings, "probabilities")
        self.branches = control(SegmentSettings, "branches")
        self.estimate.tooltip = self.unit.tooltip = self.diameter.tooltip
        self.checkpoint.tooltip = self.model.tooltip
        self.extend([self.image, self.channel, self.model, self.checkpoint])
        self.extend([self.device, self.tile_size, self.threshold, self.estimate])
        self.extend([self.diameter, self.unit, self.min_size, self.axes, self.link])
        self.extend([self.probabilities, self.branches])
        self._finish()
        self.save_csv = self.save_button(
            "measurements",
            "CSV",
            self.save_measurements,
            "the per-nucleus table of the last labels (also in napari's "
            "features table, and npp.measure from the console)",
        )
        self.append(self.save_csv)
        here = self.device.choices  # a device saved on another machine may be missing
        remember("segment", self.device, "device", valid=here.__contains__)
        remember("segment", self.tile_size, "tile_size")
        for changes in (self.image, self.model, self.estimate, self.axes):
            changes.changed.connect(self._sync)
        self._sync()

    def _sync(self, *_):
        """Show the controls that apply: RGB channel, checkpoint file, diameter."""
        layer = self.image.value
        self.channel.visible = bool(layer is not None and layer.rgb)
        self.checkpoint.visible = self.model.value == CHECKPOINT
        self.diameter.enabled = self.unit.enabled = not self.estimate.value
        source = self.source_of(self.image)
        offer(self.axes, *action.axes_choices(source))
        self.axes.visible = stack = action.is_stack(source)
        self.link.visible = stack and "t" in (self.axes.value or "")
        units = action.unit_choices(source)
        offer(self.unit, units, self.unit.value if self.unit.value in units else "px")

    def settings(self) -> SegmentSettings:
        diameter = None
        if not self.estimate.value:  # given, in pixels or in the layer's unit
            source, unit = source_from_layer(self.image.value), self.unit.value
            diameter = action.diameter_in_pixels(self.diameter.value, unit, source)
        axes = self.axes.value or "yx"
        return self.from_controls(
            SegmentSettings,
            model=action.model_setting(self.model.value, self.checkpoint.value),
            diameter=diameter,
            min_size=self.min_size.value or None,
            axes=axes,
            link=self.link.value and "t" in axes,
        )

    def save_measurements(self, path: str | Path) -> Path:
        """Write the last labels' per-nucleus table to a CSV file."""
        return action.save_measurements(self.last_layers, path)

    def prepare(self) -> Job:
        return action.run(source_from_layer(self.image.value), self.settings())
