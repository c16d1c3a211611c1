"""The Blend widget: two image layers and a mask in, a seamless blend out.

:mod:`napari_pyramids.layers` turns the mask layer into weights on image A's
grid; :func:`napari_pyramids.actions.blend.run` blends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, SpinBox

from napari_pyramids.actions import Job
from napari_pyramids.actions import blend as action
from napari_pyramids.actions.blend import BlendSettings
from napari_pyramids.layers import layer_kind, mask_source_from_layer, source_from_layer
from napari_pyramids.widgets._base import (
    JobWidget,
    control,
    layer_choices,
    layer_picker,
    levels_controls,
    live_choices,
    pick_layer,
)

if TYPE_CHECKING:
    import napari

MASK_TYPES = ("labels", "shapes", "image")


class BlendWidget(JobWidget):
    """Plugins > napari-pyramids > Blend.

    Blend image A into image B where the mask is set (Burt & Adelson's
    multiresolution spline), or with a feathered mask or a hard cut to compare.
    The mask is a Labels layer (one label, or any), a Shapes layer or a grey
    Image layer (scaled to [0, 1]) on image A's grid. The result is a new layer
    aligned with image A; "show mask octaves" adds the mask's Gaussian pyramid,
    the weights each band is blended with.
    """

    run_label = "Blend"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)
        self.image_a = layer_picker(
            "image",
            "image A",
            "the image shown where the mask is set; the "
            "result lies on its grid (by default the latest image layer)",
        )
        self.image_b = layer_picker(
            "image",
            "image B",
            "the image shown where the mask is not set, "
            "same shape as A (by default the latest other image layer)",
        )
        self.mask = ComboBox(
            label="mask (A where set)",
            choices=live_choices(layer_choices, viewer.layers, MASK_TYPES),
            tooltip="where to take image A: a Labels layer, a Shapes layer "
            "(its shapes filled) or a grey Image layer (scaled to [0, 1])",
        )
        self.any_label = CheckBox(text="any label (all painted pixels)", value=True)
        self.any_label.tooltip = (
            "a Labels mask: every painted pixel takes A; untick to choose one label"
        )
        self.label_value = SpinBox(label="label", min=1, max=2**31 - 1, value=1)
        self.label_value.tooltip = "the one label whose pixels take image A"
        self.method = control(BlendSettings, "method")
        self.auto_levels, self.levels = levels_controls(BlendSettings, value=5)
        self.feather_width = control(BlendSettings, "width")
        self.show_mask_octaves = control(BlendSettings, "show_mask_octaves")
        self.extend([self.image_a, self.image_b, self.mask, self.any_label])
        self.extend([self.label_value, self.method, self.auto_levels, self.levels])
        self.extend([self.feather_width, self.show_mask_octaves])
        self._finish()
        for changes in (self.mask, self.any_label, self.method, self.auto_levels):
            changes.changed.connect(self._sync)
        self._sync()

    def layer_defaults(self) -> list:
        """A: the latest image; B: the latest other one; mask: labels or shapes
        (an image only without either): on *Cat and coffee*, cat, coffee, mask."""
        layers = self.input_layers()

        def mask():
            pair = (self.image_a.value, self.image_b.value)
            return pick_layer(layers, MASK_TYPES, avoid=pair)

        def image_b():
            return pick_layer(layers, ["image"], avoid=[self.image_a.value])

        return [
            (self.image_a, lambda: pick_layer(layers, ["image"])),
            (self.image_b, image_b),
            (self.mask, mask),
        ]

    def _sync(self, *_):
        """Show only the options that apply to the current choices."""
        is_labels = layer_kind(self.mask.value) == "labels"
        self.any_label.visible = is_labels
        self.label_value.visible = is_labels and not self.any_label.value
        pyramid = self.method.value == "pyramid"
        self.auto_levels.visible = pyramid
        self.levels.visible = pyramid and not self.auto_levels.value
        self.feather_width.visible = self.method.value == "feather"

    def settings(self) -> BlendSettings:
        levels = None if self.auto_levels.value else self.levels.value
        return self.from_controls(BlendSettings, levels=levels)

    def prepare(self) -> Job:
        a = source_from_layer(self.image_a.value, role="image A")
        b = source_from_layer(self.image_b.value, role="image B")
        label = None if self.any_label.value else self.label_value.value
        mask = mask_source_from_layer(self.mask.value, a, label=label)
        return action.run(a, b, mask, self.settings())
