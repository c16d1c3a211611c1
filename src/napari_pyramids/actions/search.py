"""The Search action: find a template coarse-to-fine and show how the search went.

The result's layers are match centres at their sub-pixel position (Points;
score and scale as features, score as text), match boxes (Shapes, the
template's size times the match's scale) and, with the trace on, one Points
layer per octave whose scale is ``2**k`` times the image's, so candidates sit
where they were examined (with the template scale each was examined at).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from napari_pyramids.actions.base import Job, Result, Settings, Step, setting
from napari_pyramids.core.search import Match, iter_find_template
from napari_pyramids.layers import Source
from napari_pyramids.progress import map_steps

#: Diameter of an octave-0 trace disc, in image pixels (octave k: k more).
TRACE_DISC = 2


@dataclass(frozen=True)
class SearchSettings(Settings):
    """What to look for and what to show."""

    max_matches: int = setting(
        1,
        "how many places to report at most; overlapping matches count as one",
        label="max matches",
        limits=(1, 500),
    )
    min_score: float | None = setting(
        0.5,
        "leave out matches whose ZNCC (1: identical up to brightness and "
        "contrast, 0: unrelated) is below this",
        label="min score",
        limits=(-1.0, 1.0),
    )
    scales: tuple[float, float] | None = setting(
        None,
        "search the template at every scale in this range of object size / "
        "template size (0.5-2: the object may be half to twice the template's "
        "size); none: at its own size only",
        label="scales",
        limits=(0.25, 4.0),
        step=0.05,
    )
    show_trace: bool = setting(
        True,
        "add the candidates examined at each octave, coloured by their score",
        label="show search trace",
    )
    compare_exhaustive: bool = setting(
        True,
        "also time OpenCV's exhaustive search over the whole image, to see "
        "what coarse-to-fine saves (at one scale only: over a range of scales "
        "it would compare unlike work)",
        label="time exhaustive search (OpenCV)",
    )


@dataclass(frozen=True)
class SearchResult(Result):
    """The layers, the status line, and the matches found (best first)."""

    matches: list[Match] = field(default_factory=list)


def run(source: Source, template: np.ndarray, settings: SearchSettings) -> Job:
    """Check the template against ``source``; return the job that searches.

    ``template`` is an array of ``source``'s kind (same channels), e.g. a
    rectangle cut with :func:`napari_pyramids.layers.rectangle_crop`.
    """
    search = iter_find_template(
        source.data,
        template,
        max_matches=settings.max_matches,
        min_score=settings.min_score,
        channel_axis=source.channel_axis,
        scales=settings.scales,
    )
    return Job(
        description=f"Template search in {source.name}",
        steps=_search_steps(search, source, template, settings),
    )


def _search_steps(search, source: Source, template, settings: SearchSettings):
    """Search, one :class:`Step` per octave; return the layers and the summary."""
    t0 = time.perf_counter()
    octaves = []
    compare = settings.compare_exhaustive and settings.scales is None

    def step(octave):
        octaves.append(octave)
        total = octaves[0].octave + 1 + compare
        return Step(len(octaves), total, f"octave {octave.octave}")

    matches = yield from map_steps(search, step)
    seconds = time.perf_counter() - t0
    exhaustive = None
    if compare:
        yield Step(len(octaves), len(octaves) + 1, "timing exhaustive search")
        exhaustive = exhaustive_seconds(source, template)
    layers = match_layers(source, matches, octaves if settings.show_trace else [])
    return SearchResult(layers, describe(matches, seconds, exhaustive), matches)


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
    """The search trace (Points), match boxes (Shapes) and match centres (Points).

    Bottom to top, so the scores stay readable: the trace is one layer of
    every candidate examined, in the image's pixels, coloured by score and
    with an ``octave`` feature (larger discs for coarser octaves, a few pixels
    wide, so they do not cover the matches); the scores are written in
    magenta, which stands out on the yellow boxes and on grey or colour
    photos. Three layers, not one per octave: each layer napari adds costs
    the GUI thread about 0.1 s.
    """
    name = source.name
    spatial = len(source.scale)
    transform = {"scale": source.scale, "translate": source.translate}
    layers = []
    shape = np.array(matches[0].shape if matches else (1,) * spatial)
    if octaves:
        points, scores, scales, octave_of = [], [], [], []
        for octave in octaves:
            factor = np.array(octave.scale)
            # template pixel (shape - 1) / 2 at the candidate's scale, in octave pixels
            middle = (shape - 1) * octave.scales[:, None] / factor / 2
            points.append((octave.positions + middle) * factor)
            scores.append(octave.scores)
            scales.append(octave.scales)
            octave_of.append(np.full(len(octave.scores), octave.octave))
        octave_of = np.concatenate(octave_of)
        layers.append(
            (
                np.concatenate(points).reshape(-1, spatial),
                {
                    "name": f"{name} search trace",
                    "features": {
                        "score": np.concatenate(scores),
                        "scale": np.concatenate(scales),
                        "octave": octave_of,
                    },
                    "face_color": "score",
                    "face_colormap": "viridis",
                    "border_width": 0,
                    "size": TRACE_DISC + octave_of,
                    "opacity": 0.8,
                    **transform,
                },
                "points",
            )
        )
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
    centres = np.array([m.subpixel_center for m in matches]).reshape(-1, spatial)
    scores = np.array([m.score for m in matches])
    text = {
        "string": "{score:.2f}",
        "anchor": "upper_left",
        "color": "magenta",
        "size": 9,
    }
    layers.append(
        (
            centres,
            {
                "name": f"{name} matches",
                "features": {
                    "score": scores,
                    "scale": np.array([m.scale for m in matches]),
                },
                "text": text,
                "face_color": "yellow",
                "size": 8,
                **transform,
            },
            "points",
        )
    )
    return layers


def describe(matches, seconds: float, exhaustive: float | None) -> str:
    """Status line: how many matches, best score, time taken vs exhaustive."""
    if not matches:
        text = "No match above the minimum score."
    else:
        text = f"{len(matches)} match(es), best ZNCC {matches[0].score:.3f}"
        if matches[0].scale != 1:
            text += f" at scale {matches[0].scale:.3f}"
    text += f"; coarse-to-fine {1e3 * seconds:.0f} ms"
    if exhaustive is not None:
        ratio = exhaustive / max(seconds, 1e-9)
        text += f", exhaustive (OpenCV) {1e3 * exhaustive:.0f} ms: "
        text += (
            f"{ratio:.1f}x faster"
            if ratio >= 1
            else "exhaustive wins on an image this small"
        )
    return text
