"""The Search widget: find a template coarse-to-fine and show how the search went.

The template is the rectangle last drawn in a Shapes layer (cut from the
"template from" image, which may be the searched image or another one), or a
whole image layer. The work is :func:`napari_pyramids.actions.search.run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import FloatRangeSlider, FloatSlider

from napari_pyramids.actions import Job
from napari_pyramids.actions import search as action
from napari_pyramids.actions.search import SearchSettings
from napari_pyramids.layers import rectangle_crop, source_from_layer
from napari_pyramids.widgets._base import JobWidget, control, layer_picker, pick_layer

if TYPE_CHECKING:
    import napari


def search_scales(value) -> tuple[float, float] | None:
    """The "scales" control's range for find_template: None for (1, 1)."""
    lo, hi = (float(v) for v in value)
    return None if lo == hi == 1.0 else (lo, hi)


def _has_box(layer) -> bool:
    """Whether a Shapes layer holds a rectangle (the template's outline)."""
    return "rectangle" in layer.shape_type


def _covers(image, shapes) -> bool:
    """Whether the image layer lies under the middle of the last shape drawn."""
    if shapes is None or not len(shapes.data):
        return True
    middle = shapes.data_to_world(np.mean(shapes.data[-1], axis=0))
    low, high = image.extent.world
    n = len(middle)
    return bool(np.all((low[-n:] <= middle) & (middle <= high[-n:])))


def _holds(image, patch) -> bool:
    """Whether the image layer is larger than the patch layer along every
    spatial axis (and not the patch itself)."""
    if image is patch or image.ndim != patch.ndim:
        return False
    big, small = (layer.data.shape[: layer.ndim] for layer in (image, patch))
    return all(b >= s for b, s in zip(big, small)) and big != small


class SearchWidget(JobWidget):
    """Plugins > napari-pyramids > Template search.

    Draw a rectangle in a Shapes layer over what to find (or pick an image layer
    as the template), choose the image to search, and Run. Matches appear as
    points (with their ZNCC score) and boxes; "show search trace" adds the
    candidates examined at each octave. Runs off the GUI thread.
    """

    run_label = "Search"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)
        self.image = layer_picker("image", "search in", "the image layer to search")
        self.template_image = layer_picker(
            "image",
            "template from",
            "the image layer the template is cut from "
            "(the searched image or another one)",
        )
        self.rectangle = layer_picker(
            "shapes",
            "rectangle",
            "a Shapes layer whose last rectangle is the template; "
            '----- takes the whole "template from" layer',
            nullable=True,
        )
        self.max_matches = control(SearchSettings, "max_matches")
        self.min_score = control(SearchSettings, "min_score", FloatSlider)
        self.scales = control(
            SearchSettings, "scales", FloatRangeSlider, value=(1.0, 1.0)
        )
        self.show_trace = control(SearchSettings, "show_trace")
        self.compare = control(SearchSettings, "compare_exhaustive")
        self.extend([self.image, self.template_image, self.rectangle])
        self.extend([self.max_matches, self.min_score, self.scales])
        self.extend([self.show_trace, self.compare])
        self._finish()

    def layer_defaults(self) -> list:
        """The rectangle: the latest Shapes layer with a rectangle; "search in"
        and "template from": the latest image layer it is drawn on. With no
        rectangle the latest image layer is the template, and "search in" the
        latest image layer larger than it (a picture and a patch cut from it
        or from another view of it)."""
        layers = self.input_layers()

        def drawn_on():
            shapes = self.rectangle.value
            on_it = pick_layer(layers, ["image"], where=lambda i: _covers(i, shapes))
            return on_it or pick_layer(layers, ["image"])

        def searched():
            patch = drawn_on()
            if self.rectangle.value is None and patch is not None:
                larger = pick_layer(layers, ["image"], where=lambda i: _holds(i, patch))
                return larger or patch
            return patch

        return [
            (self.rectangle, lambda: pick_layer(layers, ["shapes"], where=_has_box)),
            (self.image, searched),
            (self.template_image, drawn_on),
        ]

    def template(self) -> np.ndarray:
        """The template pixels: the rectangle's crop, or the whole layer."""
        layer = self.template_image.value or self.image.value
        source = source_from_layer(layer, role="template")
        if self.rectangle.value is None:
            return np.asarray(source.data)
        return np.asarray(source.data[rectangle_crop(source, self.rectangle.value)])

    def settings(self) -> SearchSettings:
        scales = search_scales(self.scales.value)
        return self.from_controls(SearchSettings, scales=scales)

    def prepare(self) -> Job:
        source = source_from_layer(self.image.value)
        return action.run(source, self.template(), self.settings())
