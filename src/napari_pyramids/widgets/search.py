"""The Search widget: find a template coarse-to-fine and show how the search went.

The template is the rectangle last drawn in a Shapes layer (cut from the
"template from" image, which may be the searched image or another one), or a
whole image layer. The work is :func:`napari_pyramids.actions.search.run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    FloatRangeSlider,
    FloatSlider,
    SpinBox,
    create_widget,
)

from napari_pyramids.actions import Job
from napari_pyramids.actions import search as action
from napari_pyramids.actions.search import SearchSettings
from napari_pyramids.layers import rectangle_crop, source_from_layer
from napari_pyramids.widgets._base import JobWidget, explain

if TYPE_CHECKING:
    import napari


def search_scales(value) -> tuple[float, float] | None:
    """The "scales" control's range for find_template: None for (1, 1)."""
    lo, hi = (float(v) for v in value)
    return None if lo == hi == 1.0 else (lo, hi)


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
        import napari

        defaults = SearchSettings()
        self.image = create_widget(annotation=napari.layers.Image, label="search in")
        self.template_image = create_widget(
            annotation=napari.layers.Image, label="template from"
        )
        self.rectangle = create_widget(
            annotation=napari.layers.Shapes | None,
            label="rectangle",
            options={"nullable": True},
        )
        self.max_matches = SpinBox(
            label="max matches", min=1, max=500, value=defaults.max_matches
        )
        self.min_score = FloatSlider(
            label="min score", min=-1.0, max=1.0, value=defaults.min_score
        )
        self.scales = FloatRangeSlider(
            label="scales", min=0.25, max=4.0, step=0.05, value=(1.0, 1.0)
        )
        self.show_trace = CheckBox(text="show search trace", value=defaults.show_trace)
        self.compare = CheckBox(
            text="time exhaustive search (OpenCV)", value=defaults.compare_exhaustive
        )
        explain(
            SearchSettings,
            max_matches=self.max_matches,
            min_score=self.min_score,
            scales=self.scales,
            show_trace=self.show_trace,
            compare_exhaustive=self.compare,
        )
        self.extend(
            [
                self.image,
                self.template_image,
                self.rectangle,
                self.max_matches,
                self.min_score,
                self.scales,
                self.show_trace,
                self.compare,
            ]
        )
        self._finish()

    def template(self) -> np.ndarray:
        """The template pixels: the rectangle's crop, or the whole layer."""
        layer = self.template_image.value or self.image.value
        source = source_from_layer(layer, role="template")
        if self.rectangle.value is None:
            return np.asarray(source.data)
        return np.asarray(source.data[rectangle_crop(source, self.rectangle.value)])

    def settings(self) -> SearchSettings:
        return SearchSettings(
            max_matches=self.max_matches.value,
            min_score=self.min_score.value,
            scales=search_scales(self.scales.value),
            show_trace=self.show_trace.value,
            compare_exhaustive=self.compare.value,
        )

    def prepare(self) -> Job:
        source = source_from_layer(self.image.value)
        return action.run(source, self.template(), self.settings())
