"""The Search widget: find a template coarse-to-fine and show how the search went.

The template is the rectangle last drawn in a Shapes layer (cut from the
"template from" image, which may be the searched image or another one), or a
whole image layer. :func:`search_job` runs :func:`napari_pyramids.core.search.
iter_find_template` off the GUI thread, one step per octave, and returns layer
tuples: match centres at their sub-pixel position (Points; score and scale as
features, score as text), match boxes (Shapes, the template's size times the
match's scale) and, with the trace on, one Points layer per octave whose scale
is ``2**k`` times the image's, so candidates sit where they were examined (with
the template scale each was examined at).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import cv2
import numpy as np
from magicgui.widgets import (
    CheckBox,
    FloatRangeSlider,
    FloatSlider,
    SpinBox,
    create_widget,
)

from napari_pyramids.core._steps import map_steps
from napari_pyramids.core.search import iter_find_template
from napari_pyramids.layers import (
    Source,
    octave_transform,
    rectangle_crop,
    source_from_layer,
)
from napari_pyramids.widgets._base import Job, JobWidget, Step

if TYPE_CHECKING:
    import napari


def search_job(
    source: Source,
    template: np.ndarray,
    *,
    max_matches: int = 1,
    min_score: float | None = None,
    show_trace: bool = True,
    compare_exhaustive: bool = True,
    summary: dict | None = None,
    scales: tuple[float, float] | None = None,
):
    """Search, yielding one :class:`Step` per octave; return the layer tuples.

    ``summary`` (if given) receives the timings and matches for the status line;
    ``scales`` is :func:`~napari_pyramids.core.search.find_template`'s (the
    exhaustive timing, at one scale, is then left out: it would compare unlike
    work).
    """
    compare_exhaustive = compare_exhaustive and scales is None
    t0 = time.perf_counter()
    search = iter_find_template(
        source.data,
        template,
        max_matches=max_matches,
        min_score=min_score,
        channel_axis=source.channel_axis,
        scales=scales,
    )
    octaves = []

    def step(octave):
        octaves.append(octave)
        total = octaves[0].octave + 1 + compare_exhaustive
        return Step(len(octaves), total, f"octave {octave.octave}")

    matches = yield from map_steps(search, step)
    elapsed = time.perf_counter() - t0
    exhaustive = None
    if compare_exhaustive:
        yield Step(len(octaves), len(octaves) + 1, "timing exhaustive search")
        exhaustive = exhaustive_seconds(source, template)
    if summary is not None:
        summary.update(matches=matches, seconds=elapsed, exhaustive=exhaustive)
    return match_layers(source, matches, octaves if show_trace else [])


def exhaustive_seconds(source: Source, template: np.ndarray) -> float | None:
    """Seconds OpenCV's exhaustive ``matchTemplate(TM_CCOEFF_NORMED)`` takes on
    the whole image: what the search saves. None for volumes and for more than
    4 channels, which OpenCV cannot match in one call.

    For colour OpenCV centres each channel on its own mean, so its scores differ
    slightly from :func:`~napari_pyramids.core.search.zncc_map`; the work, and
    so the time, is the same.
    """
    image, template = np.asarray(source.data), np.asarray(template)
    if source.channel_axis is not None:
        image = np.moveaxis(image, source.channel_axis, -1)
        template = np.moveaxis(template, source.channel_axis, -1)
    if source.spatial_ndim != 2 or image.ndim == 3 and image.shape[-1] > 4:
        return None
    image = np.ascontiguousarray(image, dtype=np.float32)
    template = np.ascontiguousarray(template, dtype=np.float32)
    t0 = time.perf_counter()
    cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
    return time.perf_counter() - t0


def match_layers(source: Source, matches, octaves) -> list:
    """Points at match centres, Shapes boxes, and one Points layer per octave."""
    name = source.name
    spatial = len(source.scale)
    centres = np.array([m.subpixel_center for m in matches]).reshape(-1, spatial)
    scores = np.array([m.score for m in matches])
    features = {"score": scores, "scale": np.array([m.scale for m in matches])}
    text = {
        "string": "{score:.2f}",
        "anchor": "upper_left",
        "color": "yellow",
        "size": 8,
    }
    transform = {"scale": source.scale, "translate": source.translate}
    layers = [
        (
            centres,
            {
                "name": f"{name} matches",
                "features": features,
                "text": text,
                "face_color": "yellow",
                "size": 8,
                **transform,
            },
            "points",
        )
    ]
    if spatial == 2 and matches:
        corners = np.array([[0, 0], [0, 1], [1, 1], [1, 0]])
        # pixel edges, not centres: template pixel i covers i -+ 1/2 at its scale
        boxes = [
            np.array(m.position) - m.scale / 2 + corners * np.array(m.size)
            for m in matches
        ]
        layers.append(
            (
                boxes,
                {
                    "name": f"{name} match boxes",
                    "shape_type": "rectangle",
                    "edge_color": "yellow",
                    "face_color": "transparent",
                    "edge_width": 2,
                    **transform,
                },
                "shapes",
            )
        )
    shape = np.array(matches[0].shape if matches else (1,) * spatial)
    for octave in octaves:
        k = octave.octave
        # template pixel (shape - 1) / 2 at the candidate's scale, in octave pixels
        middle = (shape - 1) * octave.scales[:, None] / np.array(octave.scale) / 2
        reduced = tuple(i for i, s in enumerate(octave.scale) if s > 1)
        layers.append(
            (
                octave.positions + middle,
                {
                    "name": f"{name} search octave {k}",
                    "features": {"score": octave.scores, "scale": octave.scales},
                    "face_color": "score",
                    "face_colormap": "viridis",
                    "size": 4,
                    "opacity": 0.8,
                    **octave_transform(source, k, reduced),
                },
                "points",
            )
        )
    return layers


def describe(summary: dict) -> str:
    """Status line: how many matches, best score, time taken vs exhaustive."""
    matches = summary["matches"]
    if not matches:
        text = "No match above the minimum score."
    else:
        text = f"{len(matches)} match(es), best ZNCC {matches[0].score:.3f}"
        if matches[0].scale != 1:
            text += f" at scale {matches[0].scale:.3f}"
    text += f"; coarse-to-fine {1e3 * summary['seconds']:.0f} ms"
    if summary.get("exhaustive") is not None:
        ratio = summary["exhaustive"] / max(summary["seconds"], 1e-9)
        text += f", exhaustive (OpenCV) {1e3 * summary['exhaustive']:.0f} ms: "
        text += (
            f"{ratio:.1f}x faster"
            if ratio >= 1
            else "exhaustive wins on an image this small"
        )
    return text


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

        self.image = create_widget(annotation=napari.layers.Image, label="search in")
        self.template_image = create_widget(
            annotation=napari.layers.Image, label="template from"
        )
        self.rectangle = create_widget(
            annotation=napari.layers.Shapes | None,
            label="rectangle",
            options={"nullable": True},
        )
        self.max_matches = SpinBox(label="max matches", min=1, max=500, value=1)
        self.min_score = FloatSlider(label="min score", min=-1.0, max=1.0, value=0.5)
        self.scales = FloatRangeSlider(
            label="scales",
            min=0.25,
            max=4.0,
            step=0.05,
            value=(1.0, 1.0),
            tooltip="object size / template size to search; (1, 1): one scale",
        )
        self.show_trace = CheckBox(text="show search trace", value=True)
        self.compare = CheckBox(text="time exhaustive search (OpenCV)", value=True)
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

    def prepare(self) -> Job:
        source = source_from_layer(self.image.value)
        template = self.template()
        summary: dict = {}
        options = dict(
            max_matches=self.max_matches.value,
            min_score=self.min_score.value,
            show_trace=self.show_trace.value,
            compare_exhaustive=self.compare.value,
            summary=summary,
            scales=search_scales(self.scales.value),
        )
        return Job(
            run=lambda: search_job(source, template, **options),
            description=f"Template search in {source.name}",
            on_done=lambda _: describe(summary),
        )
