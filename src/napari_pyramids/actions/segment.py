"""The Segment action: nuclei instance labels (and maps) from an image.

Importable without torch: the settings and their defaults load nothing
heavy, and torch loads when :func:`run` first loads a model.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_pyramids.actions.base import Job, Result, Settings, Step, setting
from napari_pyramids.layers import (
    Source,
    labels_layer,
    layer_kind,
    layer_name,
    map_layer,
)
from napari_pyramids.nn.defaults import (
    CORE_THRESHOLD,
    MIN_SIZE,
    TILE_SIZE,
    check_threshold,
)
from napari_pyramids.nn.rescale import TRAINED_DIAMETER
from napari_pyramids.progress import map_steps

PROBABILITY_COLORMAP = "viridis"
BRANCH_COLORMAP = "inferno"
AXES = ("yx", "zyx", "tyx", "tzyx")


@dataclass(frozen=True)
class SegmentSettings(Settings):
    """What to run."""

    model: str = setting(
        "nuclei",
        "the model: a registered name (the shipped nuclei) or a weights file",
        label="model",
    )
    device: str = setting(
        "auto",
        "where the network runs: auto picks CUDA, then Apple MPS, then the CPU",
        label="device",
    )
    tile_size: int = setting(
        TILE_SIZE,
        "the image is segmented in tiles of at most this many pixels square: "
        "smaller tiles use less memory",
        label="tile size",
        limits=(128, 8192),
        step=64,
    )
    threshold: float = setting(
        CORE_THRESHOLD,
        "core probability above which a pixel seeds a nucleus: higher splits "
        "touching nuclei more, lower finds more faint ones",
        label="core threshold",
        limits=(0.05, 0.95),
        step=0.05,
    )
    diameter: float | None = setting(
        None,
        "typical nucleus diameter in pixels: the image is resampled (through its "
        f"pyramid) so nuclei have the size the model was trained on "
        f"({TRAINED_DIAMETER:g} px); none: the model estimates it from a quick "
        "look at a few octaves of the image",
        label="nucleus diameter",
        limits=(0.5, 100_000.0),
        step=1.0,
    )
    min_size: int | None = setting(
        None,
        f"nuclei with fewer pixels are dropped; none: {MIN_SIZE} px at the "
        "trained size, scaled with the nucleus diameter",
        label="smallest nucleus (px, 0: auto)",
        limits=(0, 100_000),
    )
    channel: int | None = setting(
        None,
        "RGB images: the channel with the nuclear stain (blue for DAPI, Hoechst)",
        label="channel",
    )
    probabilities: bool = setting(
        False,
        "also add the interior and boundary probability maps",
        label="add probabilities",
    )
    branches: bool = setting(
        False,
        "also add one map per ASPP branch (each atrous rate and the image "
        "pooling): how strongly each context size responds",
        label="show ASPP branches",
    )
    axes: str = setting(
        "yx",
        "what the layer's dimensions are: z-stacks get one id per nucleus "
        "through z, time-lapses one set of ids per frame",
        choices=dict(zip(AXES, AXES)),
        label="axes",
    )
    link: bool = setting(
        False,
        "time-lapses: a nucleus keeps its id from frame to frame while it overlaps",
        label="link nuclei through time",
    )

    def check(self) -> None:
        check_threshold(self.threshold)
        if self.diameter is not None and not self.diameter > 0:
            raise ValueError(
                f"nucleus diameter must be positive, got {self.diameter}; leave it "
                "out (the widget's 'estimate') to let the model find it"
            )
        if self.axes != "yx" and (self.probabilities or self.branches):
            raise ValueError(
                "probability and ASPP branch maps are made for 2-D images; untick "
                "them to segment a stack"
            )


@dataclass(frozen=True)
class SegmentResult(Result):
    """The layers, the status line, and what the run found and where it ran."""

    count: int = 0
    seconds: float = 0.0
    device: str = ""


@functools.lru_cache(maxsize=4)
def _load(name_or_path: str, stamp: tuple[int, int] | None):
    from napari_pyramids.nn import load_model

    return load_model(name_or_path)


def cached_model(name_or_path: str):
    """:func:`~napari_pyramids.nn.load_model`, cached per name or file version."""
    path = Path(name_or_path)
    stamp = None
    if path.is_file():  # a checkpoint: reload when the file changes
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    return _load(name_or_path, stamp)


def model_label(name_or_path: str) -> str:
    """The model's name in layer names: the registry name or the file's stem."""
    from napari_pyramids.nn import REGISTRY

    return name_or_path if name_or_path in REGISTRY else Path(name_or_path).stem


def plane(source: Source, channel: int | None, axes: str = "yx"):
    """The image to segment (a plane, or a stack with ``axes``), with clear errors."""
    if source.rgb:
        if channel is None:
            raise ValueError(
                f"{source.name!r} is an RGB image and the model takes one channel: "
                "choose the channel with the nuclear stain under 'channel' (blue for "
                "DAPI or Hoechst)"
            )
        n_channels = source.data.shape[-1]
        if not 0 <= channel < n_channels:
            raise ValueError(
                f"channel {channel} does not exist: {source.name!r} has {n_channels}"
            )
        return source.data[..., channel]
    if source.spatial_ndim != len(axes) or source.spatial_ndim not in (2, 3, 4):
        raise ValueError(
            f"{source.name!r} has shape {tuple(source.data.shape)}; the model segments "
            "one 2-D image or a stack whose axes you choose under 'axes' (zyx, tyx, "
            "tzyx)"
        )
    return source.data


#: The model choice that means a weights file (:func:`model_setting`).
CHECKPOINT = "checkpoint file…"


def model_names() -> list[str]:
    """The models to pick from by name: the shipped ones, then the user's own."""
    from napari_pyramids.nn import user_models
    from napari_pyramids.nn.weights import REGISTRY

    return [*REGISTRY, *user_models.user_models()]


def model_choices() -> list[str]:
    """What a model drop-down offers: the models by name, then a weights file."""
    return [*model_names(), CHECKPOINT]


def model_setting(choice: str, checkpoint: str | Path | None = None) -> str:
    """The ``model`` setting for a model picked by name, or for the weights file
    ``checkpoint`` (which must exist) when the choice is :data:`CHECKPOINT`."""
    if choice != CHECKPOINT:
        from napari_pyramids.nn import user_models

        return user_models.resolve(choice)
    if checkpoint is None or not Path(checkpoint).is_file():
        raise ValueError("choose a weights file (.safetensors, .pt, .pth)")
    return str(checkpoint)


def device_choices() -> list[tuple[str, str]]:
    """``(text, device)`` for each device here; "auto" says which it picks."""
    from napari_pyramids.nn.runtime import available_devices, resolve_device

    auto = str(resolve_device("auto"))
    return [(f"auto ({auto})" if d == "auto" else d, d) for d in available_devices()]


def is_stack(source: Source | None) -> bool:
    """Whether ``source`` has stack axes (z, t) before y, x: not one plane."""
    return source is not None and not source.rgb and source.spatial_ndim > 2


def axes_choices(source: Source | None) -> tuple[list[str], str]:
    """The ``axes`` settings that fit ``source`` and the likely one (a plane: yx)."""
    if not is_stack(source):
        return ["yx"], "yx"
    fitting = [a for a in AXES if len(a) == source.spatial_ndim]
    return fitting or ["yx"], default_axes(source)


def unit_choices(source: Source | None) -> list[str]:
    """The units a diameter may be given in: pixels, and the layer's own unit."""
    unit = None if source is None else physical_unit(source)
    return ["px"] if unit is None else ["px", unit]


def save_measurements(layers, path: str | Path) -> Path:
    """Write the per-nucleus table of the last Labels layer in ``layers`` (a
    run's napari layers, whose features are the measurements) to a CSV file."""
    tables = [layer.features for layer in layers if layer_kind(layer) == "labels"]
    if not tables:
        raise ValueError("segment an image first: there are no labels to measure")
    path = Path(path)
    tables[-1].to_csv(path, index=False)
    return path


def default_axes(source: Source) -> str:
    """The stack axes a layer's axis labels name (t, z), else yx / zyx / tzyx."""
    names = [str(n).lower() for n in source.axes_meta.get("axis_labels", ())]
    ndim = source.spatial_ndim
    if len(names) == ndim and ndim in (3, 4):
        lead = "".join(n[0] for n in names[:-2])
        if lead in ("z", "t", "tz"):
            return lead + "yx"
    return {3: "zyx", 4: "tzyx"}.get(ndim, "yx")


def run(source: Source, settings: SegmentSettings) -> Job:
    """Check ``settings`` for ``source`` and load the model; return the job."""
    from napari_pyramids.nn.runtime import resolve_device

    image = plane(source, settings.channel, settings.axes)
    if whole_slide(source, settings) and (settings.probabilities or settings.branches):
        raise ValueError(
            f"{source.name!r} is a dask- or zarr-backed image, segmented block by "
            "block into zarr labels; probability and ASPP branch maps are made in "
            "memory: untick them"
        )
    model = cached_model(settings.model)
    device = str(resolve_device(settings.device))
    label = model_label(settings.model)
    return Job(
        description=f"Segment {source.name} ({label}, {device})",
        steps=_segment_steps(source, image, model, label, device, settings),
    )


def whole_slide(source: Source, settings: SegmentSettings) -> bool:
    """Whether ``source`` is segmented block by block into zarr labels.

    A dask- or zarr-backed plane (a slide scan opened lazily, a multiscale
    layer's level 0) is never loaded whole: it goes to
    :func:`~napari_pyramids.nn.whole_slide.segment_slide_steps`.
    """
    return source.is_lazy and settings.axes == "yx"


def _segment_steps(source, image, model, label, device, settings):
    """Run the model tile by tile (or plane by plane), yielding progress.

    Returns the maps asked for and the Labels layer, whose features are the
    per-nucleus measurements (:func:`napari_pyramids.measure`).
    """
    if whole_slide(source, settings):
        return (yield from _slide_steps(source, image, model, label, device, settings))
    start = time.perf_counter()
    if settings.axes == "yx":
        prediction = yield from _plane_steps(image, model, device, settings)
        labels, maps = prediction.labels, map_layers(source, label, prediction)
        scale = describe_scale(prediction)
    else:
        labels, scale = yield from _stack_steps(image, model, device, settings)
        maps = []
    seconds = time.perf_counter() - start
    count = int(len(np.unique(labels)) - 1)
    from napari_pyramids.core.measure import measure

    features = measure(
        labels,
        np.asarray(image),
        scale=source.scale[-labels.ndim :],
        unit=physical_unit(source),
        axes=settings.axes,
    )
    layer = labels_layer(
        labels,
        source,
        name=layer_name(source.name, f"{label} labels"),
        features=features,
        metadata={"napari_pyramids": {"source": source.name, "model": label}},
    )
    summary = _summary(count, seconds, device, image.shape, scale)
    return SegmentResult([*maps, layer], summary, count, seconds, device)


def _summary(count: int, seconds: float, device: str, shape, where: str) -> str:
    """The status line: nuclei found, time, speed, and ``where`` (in words)."""
    megapixels = np.prod(shape) / 1e6
    return (
        f"{count} nuclei in {seconds:.1f} s on {device} "
        f"({megapixels / seconds:.2f} MP/s); {where}."
    )


def _slide_steps(source, image, model, label, device, settings):
    """Segment a dask- or zarr-backed plane block by block into zarr labels.

    The labels (a lazy multiscale Labels layer) are written to a new folder
    in the temporary directory, named in the status line; they are not
    measured (that would read the whole slide).
    """
    from napari_pyramids.nn.whole_slide import segment_slide_steps

    start = time.perf_counter()
    steps = segment_slide_steps(
        image,
        model,
        name=source.name,
        diameter=settings.diameter,
        **_options(settings, device),
    )
    slide = yield from map_steps(
        steps, lambda step: Step(*step, f"block {step[0]} of {step[1]} on {device}")
    )
    seconds = time.perf_counter() - start
    layer = labels_layer(
        slide.levels,
        source,
        name=layer_name(source.name, f"{label} labels"),
        multiscale=True,
        metadata={"napari_pyramids": {"source": source.name, "model": label}},
    )
    summary = _summary(
        slide.count, seconds, device, image.shape, f"labels in {slide.path}"
    )
    return SegmentResult([layer], summary, slide.count, seconds, device)


def _options(settings: SegmentSettings, device: str) -> dict:
    """The segmentation options a plane and a stack share."""
    return {
        "tile_size": settings.tile_size,
        "device": device,
        "threshold": settings.threshold,
        "min_size": settings.min_size,
    }


def _plane_steps(image, model, device, settings):
    from napari_pyramids.nn.infer import predict_steps

    steps = predict_steps(
        image,
        model,
        diameter=settings.diameter,
        probabilities=settings.probabilities,
        branches=settings.branches,
        **_options(settings, device),
    )
    return (
        yield from map_steps(
            steps, lambda step: Step(*step, f"tile {step[0]} of {step[1]} on {device}")
        )
    )


def _stack_steps(image, model, device, settings):
    """Segment a stack plane by plane; the labels and the diameter used, in words."""
    from napari_pyramids.nn.diameter import estimate_diameter
    from napari_pyramids.nn.infer import segment_steps
    from napari_pyramids.nn.stacks import middle_plane

    image = np.asarray(image)
    diameter, how = settings.diameter, "given"
    if diameter is None:
        diameter = estimate_diameter(middle_plane(image), model, device=device)
        how = "estimated on the middle plane"
    steps = segment_steps(
        image,
        model,
        axes=settings.axes,
        link=settings.link,
        diameter=diameter,
        **_options(settings, device),
    )
    labels = yield from map_steps(
        steps, lambda step: Step(*step, f"plane {step[0]} of {step[1]} on {device}")
    )
    return labels, f"nucleus diameter {diameter:.1f} px ({how}), axes {settings.axes}"


def describe_scale(prediction) -> str:
    """Which nucleus diameter was used and where the network ran, in words."""
    how = "estimated" if prediction.estimated else "given"
    resampling = prediction.resampling
    if resampling is None or resampling.identity:
        where = "network on the image as it is"
    elif resampling.scale > 1:
        where = f"network on the image upsampled {resampling.scale:.2f}x"
    else:
        rest = resampling.scale * 2**resampling.octaves
        where = f"network at octave {resampling.octaves}"
        if abs(rest - 1) > 1e-6:
            where += f" resampled by {rest:.2f}"
    return f"nucleus diameter {prediction.diameter:.1f} px ({how}), {where}"


def physical_unit(source: Source) -> str | None:
    """The unit of the image's y/x scale, or None for plain pixels."""
    units = source.axes_meta.get("units")
    if not units or units[-1] in ("pixel", "px", ""):
        return None
    return units[-1]


def diameter_in_pixels(value: float, unit: str, source: Source) -> float:
    """A diameter given in ``unit`` ("px" or the layer's unit), in pixels.

    A physical diameter is divided by the pixel spacing (the mean of the y
    and x scale: napari pixels are usually square).
    """
    if unit == "px":
        return float(value)
    spacing = float(np.mean(source.scale[-2:]))
    return float(value) / spacing


#: Opacity of the probability and branch maps: the image shows through them.
MAP_OPACITY = 0.5


def map_layers(source: Source, label: str, prediction) -> list:
    """Probability and ASPP branch maps, bottom to top, that leave the image in view.

    The core probability shows at :data:`MAP_OPACITY` over the image; the rim
    probability and the branches start hidden (tick their eye to compare),
    since an opaque map would hide the image and the labels it explains.
    Branches go widest-context last (image pooling first); all share one
    contrast range so their strengths compare.
    """
    tuples = [
        map_layer(
            prediction.probabilities[name],
            source,
            name=layer_name(source.name, f"{label} {name} probability"),
            colormap=PROBABILITY_COLORMAP,
            contrast_limits=(0.0, 1.0),
        )
        for name in ("core", "rim")
        if name in prediction.probabilities
    ]
    branches = dict(prediction.branches)
    if "image pooling" in branches:
        branches = {"image pooling": branches.pop("image pooling"), **branches}
    if branches:
        top = max(float(np.max(m)) for m in branches.values()) or 1.0
        tuples += [
            map_layer(
                response,
                source,
                name=layer_name(source.name, f"{label} ASPP {name}"),
                colormap=BRANCH_COLORMAP,
                contrast_limits=(0.0, top),
            )
            for name, response in branches.items()
        ]
    for _, meta, _ in tuples:
        meta["visible"] = meta["name"].endswith("core probability")
        meta["opacity"] = MAP_OPACITY
    return tuples
