"""The Blend widget: two image layers and a mask in, a seamless blend out.

The work is :func:`napari_pyramids.actions.blend.run`; this module gathers the
layers and turns the controls into
:class:`~napari_pyramids.actions.blend.BlendSettings`. The mask may be a Labels
layer (one label or any), a Shapes layer (rasterised onto image A's grid) or an
Image layer (scaled to [0, 1]); :mod:`napari_pyramids.layers` turns each into
weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox, create_widget

from napari_pyramids.actions import Job
from napari_pyramids.actions import blend as action
from napari_pyramids.actions.blend import BlendSettings
from napari_pyramids.core.pyramid import DEFAULT_MIN_SIZE
from napari_pyramids.layers import layer_kind, mask_source_from_layer, source_from_layer
from napari_pyramids.widgets._base import JobWidget, choices, explain

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
        import napari

        defaults = BlendSettings()
        self.image_a = create_widget(annotation=napari.layers.Image, label="image A")
        self.image_b = create_widget(annotation=napari.layers.Image, label="image B")
        self.mask = ComboBox(label="mask (A where set)", choices=self._mask_layers)
        self.any_label = CheckBox(text="any label (all painted pixels)", value=True)
        self.label_value = SpinBox(label="label", min=1, max=2**31 - 1, value=1)
        self.method = ComboBox(
            label="method",
            choices=choices(BlendSettings, "method"),
            value=defaults.method,
        )
        self.auto_levels = CheckBox(
            text=f"all octaves down to {DEFAULT_MIN_SIZE} px", value=True
        )
        self.levels = SpinBox(label="levels", min=1, max=20, value=5)
        self.feather_width = FloatSpinBox(
            label="feather width (px)", min=0, max=1000, value=defaults.width
        )
        self.show_mask_octaves = CheckBox(
            text="show mask octaves", value=defaults.show_mask_octaves
        )
        explain(
            BlendSettings,
            method=self.method,
            levels=self.levels,
            width=self.feather_width,
            show_mask_octaves=self.show_mask_octaves,
        )
        self.auto_levels.tooltip = self.levels.tooltip
        self.extend(
            [
                self.image_a,
                self.image_b,
                self.mask,
                self.any_label,
                self.label_value,
                self.method,
                self.auto_levels,
                self.levels,
                self.feather_width,
                self.show_mask_octaves,
            ]
        )
        self._finish()
        for control in (self.mask, self.any_label, self.method, self.auto_levels):
            control.changed.connect(self._sync)
        self._sync()

    def _mask_layers(self, *_) -> list:
        """Labels, Shapes and Image layers of the viewer, labels first."""
        layers = list(self._viewer.layers)
        return [
            (f"{layer.name} ({kind})", layer)
            for kind in MASK_TYPES
            for layer in layers
            if layer_kind(layer) == kind
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
        return BlendSettings(
            method=self.method.value,
            levels=None if self.auto_levels.value else self.levels.value,
            width=self.feather_width.value,
            show_mask_octaves=self.show_mask_octaves.value,
        )

    def prepare(self) -> Job:
        a = source_from_layer(self.image_a.value, role="image A")
        b = source_from_layer(self.image_b.value, role="image B")
        label = None if self.any_label.value else self.label_value.value
        mask = mask_source_from_layer(self.mask.value, a, label=label)
        return action.run(a, b, mask, self.settings())
