"""The Pyramid widget: an image layer in, its Gaussian or Laplacian octaves out.

The work is :func:`napari_pyramids.actions.pyramid.run`, shared with the
console helper :func:`napari_pyramids.add_pyramid`; this module only turns the
controls into :class:`~napari_pyramids.actions.pyramid.PyramidSettings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import Label

from napari_pyramids.actions import Job
from napari_pyramids.actions import pyramid as action
from napari_pyramids.actions.pyramid import PyramidSettings
from napari_pyramids.layers import source_from_layer
from napari_pyramids.widgets._base import (
    JobWidget,
    control,
    layer_picker,
    levels_controls,
)

if TYPE_CHECKING:
    import napari


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
        self.image = layer_picker(
            "image",
            "image",
            "the image layer to build the pyramid of (by default the latest one)",
        )
        self.kind = control(PyramidSettings, "kind")
        self.auto_levels, self.levels = levels_controls(
            PyramidSettings, value=4, enabled=False
        )
        self.output = control(PyramidSettings, "output")
        self.reduce_z = control(PyramidSettings, "reduce_z")
        self.keep_dtype = control(PyramidSettings, "keep_dtype")
        self._note = Label(value="")
        self._note.native.setWordWrap(True)
        self.extend([self.image, self.kind, self.auto_levels, self.levels])
        self.extend([self.output, self.reduce_z, self.keep_dtype])
        self._finish()
        self.append(self._note)
        for changes in (self.auto_levels, self.output, self.kind, self.reduce_z):
            changes.changed.connect(self._sync)
        self.image.changed.connect(self._sync)
        self._sync()

    def _sync(self, *_):
        """Show only the options that apply to the current choices."""
        source = self.source_of(self.image)
        lazy = source is not None and source.is_lazy
        self.levels.enabled = not self.auto_levels.value
        self.keep_dtype.enabled = self.kind.value == "gaussian"
        self.reduce_z.visible = self._is_volume()
        if lazy:  # out-of-core data: only the lazy multiscale output
            self.output.value = "multiscale"
        self.output.enabled = not lazy
        self._note.value = action.OUTPUT_NOTES.get(self.output.value, "")
        if self.auto_levels.value and source is not None:
            made = action.octaves_made(source, self.settings())
            self.levels.value = made or self.levels.value

    def _is_volume(self) -> bool:
        layer = self.image.value
        return layer is not None and layer.ndim >= 3

    def settings(self) -> PyramidSettings:
        return self.from_controls(
            PyramidSettings,
            levels=None if self.auto_levels.value else self.levels.value,
            reduce_z=bool(self.reduce_z.value and self._is_volume()),
        )

    def prepare(self) -> Job:
        return action.run(source_from_layer(self.image.value), self.settings())
