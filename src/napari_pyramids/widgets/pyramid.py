"""The Pyramid widget: an image layer in, its Gaussian or Laplacian octaves out.

The work is :func:`napari_pyramids.actions.pyramid.run`, shared with the
console helper :func:`napari_pyramids.add_pyramid`; this module only turns the
controls into :class:`~napari_pyramids.actions.pyramid.PyramidSettings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, Label, SpinBox, create_widget

from napari_pyramids.actions import Job
from napari_pyramids.actions import pyramid as action
from napari_pyramids.actions.pyramid import PyramidSettings
from napari_pyramids.core.pyramid import DEFAULT_MIN_SIZE
from napari_pyramids.layers import source_from_layer
from napari_pyramids.widgets._base import JobWidget, choices, explain

if TYPE_CHECKING:
    import napari

MULTISCALE_NOTE = (
    "napari draws multiscale levels as if area-averaged (napari #6320): coarse\n"
    "levels may look shifted by up to half a coarse pixel. Octave layers are exact."
)


class PyramidWidget(JobWidget):
    """Plugins > napari-pyramids > Pyramid.

    Pick an image layer, Gaussian or Laplacian, how many octaves, and how to show
    them: separate layers that overlay the image exactly (Gaussian octave 0 is
    the image itself and is not added again), one multiscale layer, or an
    equal-size stack with a slider. Runs off the GUI thread; Cancel stops
    between octaves and adds nothing.

    A dask- or zarr-backed layer (a whole-slide scan, a light-sheet volume) gets a
    lazy pyramid shown as one multiscale layer: nothing is loaded up front, and
    napari computes the blocks it draws. Save it with File > Save Selected Layers
    ("Save pyramid as OME-Zarr").
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)
        import napari

        defaults = PyramidSettings()
        self.image = create_widget(annotation=napari.layers.Image, label="image")
        self.kind = ComboBox(
            label="pyramid",
            choices=choices(PyramidSettings, "kind"),
            value=defaults.kind,
        )
        self.auto_levels = CheckBox(
            text=f"all octaves down to {DEFAULT_MIN_SIZE} px", value=True
        )
        self.levels = SpinBox(label="levels", min=1, max=20, value=4, enabled=False)
        self.output = ComboBox(
            label="show as",
            choices=choices(PyramidSettings, "output"),
            value=defaults.output,
        )
        self.reduce_z = CheckBox(
            text="reduce z too (isotropic volume)", value=defaults.reduce_z
        )
        self.keep_dtype = CheckBox(
            text="Gaussian octaves keep the image dtype", value=defaults.keep_dtype
        )
        explain(
            PyramidSettings,
            kind=self.kind,
            levels=self.levels,
            output=self.output,
            reduce_z=self.reduce_z,
            keep_dtype=self.keep_dtype,
        )
        self.auto_levels.tooltip = self.levels.tooltip
        self._note = Label(value="")
        self.extend(
            [
                self.image,
                self.kind,
                self.auto_levels,
                self.levels,
                self.output,
                self.reduce_z,
                self.keep_dtype,
            ]
        )
        self._finish()
        self.append(self._note)
        for control in (self.auto_levels, self.output, self.kind, self.image):
            control.changed.connect(self._sync)
        self._sync()

    def _sync(self, *_):
        """Show only the options that apply to the current choices."""
        self.levels.enabled = not self.auto_levels.value
        self.keep_dtype.enabled = self.kind.value == "gaussian"
        self.reduce_z.visible = self._is_volume()
        if self._is_lazy():  # out-of-core data: only the lazy multiscale output
            self.output.value = "multiscale"
        self.output.enabled = not self._is_lazy()
        self._note.value = MULTISCALE_NOTE if self.output.value == "multiscale" else ""

    def _is_volume(self) -> bool:
        layer = self.image.value
        return layer is not None and layer.ndim >= 3

    def _is_lazy(self) -> bool:
        try:
            return source_from_layer(self.image.value).is_lazy
        except (TypeError, ValueError):  # no or empty layer: Run will say so
            return False

    def settings(self) -> PyramidSettings:
        return PyramidSettings(
            kind=self.kind.value,
            levels=None if self.auto_levels.value else self.levels.value,
            output=self.output.value,
            reduce_z=bool(self.reduce_z.value and self._is_volume()),
            keep_dtype=self.keep_dtype.value,
        )

    def prepare(self) -> Job:
        return action.run(source_from_layer(self.image.value), self.settings())
