"""The Segment widget: nuclei instance labels from an image layer (ASPP model).

:func:`make_segment_job` holds the computation (GUI-free, yields per tile) and
:class:`SegmentWidget` only gathers the inputs. torch loads when the widget is
first opened, not when napari starts.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    PushButton,
    SpinBox,
    create_widget,
)

from napari_pyramids.core._steps import map_steps
from napari_pyramids.layers import Source, labels_layer, map_layer, source_from_layer
from napari_pyramids.nn.defaults import CORE_THRESHOLD, TILE_SIZE
from napari_pyramids.nn.rescale import TRAINED_DIAMETER
from napari_pyramids.widgets._base import Job, JobWidget, Step
from napari_pyramids.widgets._settings import remember

if TYPE_CHECKING:
    import napari

#: The model choice that reads a weights file instead of a registered model.
CHECKPOINT = "checkpoint file…"
RGB_CHANNELS = {"red": 0, "green": 1, "blue": 2}
_NO_CHANNEL = -1
PROBABILITY_COLORMAP = "viridis"
BRANCH_COLORMAP = "inferno"


@dataclass(frozen=True)
class SegmentSettings:
    """What to run (validated by :func:`make_segment_job`)."""

    model: str = "nuclei"  # a registered name or a weights file
    device: str = "auto"
    tile_size: int = TILE_SIZE
    threshold: float = CORE_THRESHOLD
    diameter: float | None = None  # nucleus diameter in pixels; None: estimate
    min_size: int | None = None  # pixels; None: scaled with the diameter
    channel: int | None = None  # RGB images: the channel with the nuclear stain
    probabilities: bool = False
    branches: bool = False
    axes: str = "yx"  # stacks: "zyx", "tyx", "tzyx"
    link: bool = False  # time-lapses: keep a nucleus's id from frame to frame


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


def default_axes(source: Source) -> str:
    """The stack axes a layer's axis labels name (t, z), else yx / zyx / tzyx."""
    names = [str(n).lower() for n in source.axes_meta.get("axis_labels", ())]
    ndim = source.spatial_ndim
    if len(names) == ndim and ndim in (3, 4):
        lead = "".join(n[0] for n in names[:-2])
        if lead in ("z", "t", "tz"):
            return lead + "yx"
    return {3: "zyx", 4: "tzyx"}.get(ndim, "yx")


def make_segment_job(source: Source, settings: SegmentSettings) -> Job:
    """Validate ``settings`` for ``source``; return the job that builds the layers."""
    from napari_pyramids.nn.infer import resolve_device

    image = plane(source, settings.channel, settings.axes)
    maps = settings.probabilities or settings.branches
    if settings.axes != "yx" and maps:
        raise ValueError(
            "probability and ASPP branch maps are made for 2-D images; untick them "
            "to segment a stack"
        )
    if source.is_lazy and settings.axes == "yx" and maps:
        raise ValueError(
            f"{source.name!r} is a dask- or zarr-backed image, segmented block by "
            "block into zarr labels; probability and ASPP branch maps are made in "
            "memory: untick them"
        )
    if not 0.0 < settings.threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {settings.threshold}")
    if settings.diameter is not None and not settings.diameter > 0:
        raise ValueError(
            f"nucleus diameter must be positive, got {settings.diameter}; tick "
            "'estimate' to let the model find it"
        )
    model = cached_model(settings.model)
    device = str(resolve_device(settings.device))
    label = model_label(settings.model)
    result: dict = {}

    def on_done(tuples) -> str:
        megapixels = np.prod(image.shape) / 1e6
        seconds = result["seconds"]
        return (
            f"{result['count']} nuclei in {seconds:.1f} s on {result['device']} "
            f"({megapixels / seconds:.2f} MP/s); {result['scale']}."
        )

    return Job(
        run=lambda: segment_job(source, image, model, label, device, settings, result),
        description=f"Segment {source.name} ({label}, {device})",
        on_done=on_done,
    )


def segment_job(source, image, model, label, device, settings, result):
    """Run the model tile by tile (or plane by plane), yielding progress.

    Returns the layer tuples: the maps asked for and the Labels layer, whose
    features are the per-nucleus measurements (:func:`measure`).
    """
    start = time.perf_counter()
    if settings.axes == "yx" and source.is_lazy:  # a whole slide: block by block
        slide = yield from _slide_steps(source, image, model, device, settings)
        result.update(
            count=slide.count,
            device=device,
            seconds=time.perf_counter() - start,
            scale=f"labels in {slide.path}",
        )
        return [
            labels_layer(
                slide.levels,
                source,
                name=f"{source.name} {label} labels",
                multiscale=True,
                metadata={"napari_pyramids": {"source": source.name, "model": label}},
            )
        ]
    if settings.axes == "yx":
        prediction = yield from _plane_steps(image, model, device, settings)
        labels, maps = prediction.labels, map_layers(source, label, prediction)
        scale = describe_scale(prediction)
    else:
        labels, scale = yield from _stack_steps(image, model, device, settings)
        maps = []
    result.update(
        count=int(len(np.unique(labels)) - 1),
        device=device,
        seconds=time.perf_counter() - start,
        scale=scale,
    )
    from napari_pyramids.core.measure import measure

    features = measure(
        labels,
        np.asarray(image),
        scale=source.scale[-labels.ndim :],
        unit=physical_unit(source),
        axes=settings.axes,
    )
    return [
        *maps,
        labels_layer(
            labels,
            source,
            name=f"{source.name} {label} labels",
            features=features,
            metadata={"napari_pyramids": {"source": source.name, "model": label}},
        ),
    ]


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


def _slide_steps(source, image, model, device, settings):
    """Segment a dask- or zarr-backed plane block by block into zarr labels.

    The labels (a lazy label pyramid) are written to a new folder in the
    temporary directory (:func:`~napari_pyramids.lazy.segment.segment_slide_steps`);
    they are not measured (that would read the whole slide).
    """
    from napari_pyramids.lazy.segment import segment_slide_steps

    steps = segment_slide_steps(
        image,
        model,
        name=source.name,
        diameter=settings.diameter,
        **_options(settings, device),
    )
    return (
        yield from map_steps(
            steps, lambda step: Step(*step, f"block {step[0]} of {step[1]} on {device}")
        )
    )


def _stack_steps(image, model, device, settings):
    """Segment a stack plane by plane; the labels and the diameter used, in words."""
    from napari_pyramids.nn.infer import estimate_diameter, segment_steps
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


def map_layers(source: Source, label: str, prediction) -> list:
    """Probability and ASPP branch maps, bottom to top; only the top one visible.

    Branches go widest-context last (image pooling first), so the largest
    atrous rate is the one on show; all share one contrast range so their
    strengths compare.
    """
    tuples = [
        map_layer(
            prediction.probabilities[name],
            source,
            name=f"{source.name} {label} {name} probability",
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
                name=f"{source.name} {label} ASPP {name}",
                colormap=BRANCH_COLORMAP,
                contrast_limits=(0.0, top),
            )
            for name, response in branches.items()
        ]
    for _, meta, _ in tuples[:-1]:
        meta["visible"] = False
    return tuples


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
        import napari

        from napari_pyramids.nn.infer import available_devices, resolve_device

        self.image = create_widget(annotation=napari.layers.Image, label="image")
        self.channel = ComboBox(
            label="channel",
            choices=[("choose the nuclear stain…", _NO_CHANNEL)]
            + list(RGB_CHANNELS.items()),
            value=_NO_CHANNEL,
        )
        self.model = ComboBox(label="model", choices=self._model_choices)
        self.checkpoint = FileEdit(
            label="checkpoint",
            mode="r",
            filter="Weights (*.safetensors *.pt *.pth)",
        )
        auto = str(resolve_device("auto"))
        self.device = ComboBox(
            label="device",
            choices=[
                (f"auto ({auto})" if d == "auto" else d, d) for d in available_devices()
            ],
            value="auto",
        )
        self.tile_size = SpinBox(
            label="tile size", min=128, max=8192, step=64, value=TILE_SIZE
        )
        self.threshold = FloatSpinBox(
            label="core threshold",
            min=0.05,
            max=0.95,
            step=0.05,
            value=SegmentSettings.threshold,
            tooltip="core probability above which a pixel seeds a nucleus: "
            "higher splits touching nuclei more, lower finds more faint ones",
        )
        self.estimate = CheckBox(
            text="estimate nucleus diameter",
            value=True,
            tooltip="let the model find the typical nucleus size (a quick look "
            "at a few octaves of the image); untick to give it",
        )
        self.diameter = FloatSpinBox(
            label="nucleus diameter",
            min=0.5,
            max=100_000.0,
            step=1.0,
            value=TRAINED_DIAMETER,
            tooltip="typical nucleus diameter: the image is resampled (through "
            "its pyramid) so nuclei have the size the model was trained on",
        )
        self.unit = ComboBox(label="unit", choices=["px"], value="px")
        self.min_size = SpinBox(
            label="smallest nucleus (px)",
            min=0,
            max=100_000,
            value=0,
            tooltip="nuclei with fewer pixels are dropped; 0: 6 px at the "
            "trained size, scaled with the nucleus diameter",
        )
        self.axes = ComboBox(
            label="axes",
            choices=["yx"],
            tooltip="what the layer's dimensions are: z-stacks get one id per "
            "nucleus through z, time-lapses one set of ids per frame",
        )
        self.link = CheckBox(
            text="link nuclei through time",
            value=False,
            tooltip="a nucleus keeps its id from frame to frame while it overlaps",
        )
        self.save_csv = PushButton(
            text="save measurements (CSV)…",
            tooltip="the per-nucleus table of the last labels (also in napari's "
            "features table, and npp.measure from the console)",
        )
        self.probabilities = CheckBox(text="add probabilities", value=False)
        self.branches = CheckBox(text="show ASPP branches", value=False)
        self.extend(
            [
                self.image,
                self.channel,
                self.model,
                self.checkpoint,
                self.device,
                self.tile_size,
                self.threshold,
                self.estimate,
                self.diameter,
                self.unit,
                self.min_size,
                self.axes,
                self.link,
                self.probabilities,
                self.branches,
            ]
        )
        self._finish()
        self.append(self.save_csv)
        self.save_csv.changed.connect(self._ask_csv_path)
        devices = available_devices()
        remember("segment", self.device, "device", valid=devices.__contains__)
        remember("segment", self.tile_size, "tile_size")
        self.image.changed.connect(self._sync)
        self.model.changed.connect(self._sync)
        self.estimate.changed.connect(self._sync)
        self.axes.changed.connect(self._sync)
        self._sync()

    def _model_choices(self, *_):
        """Shipped models, the user's trained ones (Train widget), a file."""
        from napari_pyramids.nn import user_models
        from napari_pyramids.nn.weights import REGISTRY

        return [*REGISTRY, *user_models.user_models(), CHECKPOINT]

    def _sync(self, *_):
        """Show the controls that apply: RGB channel, checkpoint file, diameter."""
        layer = self.image.value
        self.channel.visible = bool(layer is not None and layer.rgb)
        self.checkpoint.visible = self.model.value == CHECKPOINT
        self.diameter.enabled = self.unit.enabled = not self.estimate.value
        try:
            source = source_from_layer(layer)
        except (TypeError, ValueError):  # no layer yet, or an empty one
            source = None
        unit = None if source is None else physical_unit(source)
        stack = source is not None and not source.rgb and source.spatial_ndim > 2
        ndim = source.spatial_ndim if stack else 2
        axes = [a for a in ("yx", "zyx", "tyx", "tzyx") if len(a) == ndim] or ["yx"]
        if list(self.axes.choices) != axes:
            self.axes.choices = axes
            self.axes.value = default_axes(source) if stack else "yx"
        self.axes.visible = stack
        self.link.visible = stack and "t" in (self.axes.value or "")
        choices = ["px"] if unit is None else ["px", unit]
        if list(self.unit.choices) != choices:
            keep = self.unit.value if self.unit.value in choices else "px"
            self.unit.choices = choices
            self.unit.value = keep

    def settings(self) -> SegmentSettings:
        from napari_pyramids.nn import user_models

        saved = user_models.user_models()
        if self.model.value == CHECKPOINT:
            path = self.checkpoint.value
            if path is None or not Path(path).is_file():
                raise ValueError("choose a weights file (.safetensors, .pt, .pth)")
            model = str(path)
        elif self.model.value in saved:
            model = saved[self.model.value]["path"]
        else:
            model = self.model.value
        channel = self.channel.value
        diameter = None
        if not self.estimate.value:
            source = source_from_layer(self.image.value)
            diameter = diameter_in_pixels(self.diameter.value, self.unit.value, source)
        return SegmentSettings(
            model=model,
            device=self.device.value,
            tile_size=self.tile_size.value,
            threshold=self.threshold.value,
            diameter=diameter,
            min_size=self.min_size.value or None,
            channel=None if channel == _NO_CHANNEL else channel,
            probabilities=self.probabilities.value,
            branches=self.branches.value,
            axes=self.axes.value or "yx",
            link=self.link.value and "t" in (self.axes.value or ""),
        )

    def save_measurements(self, path: str | Path) -> Path:
        """Write the last labels' per-nucleus table to a CSV file."""
        from napari.layers import Labels

        labels = [layer for layer in self.last_layers if isinstance(layer, Labels)]
        if not labels:
            raise ValueError("segment an image first: there are no labels to measure")
        path = Path(path)
        labels[-1].features.to_csv(path, index=False)
        return path

    def _ask_csv_path(self, *_):
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self.native, "Save measurements", "measurements.csv", "CSV (*.csv)"
        )
        if path:
            try:
                self._set_status(
                    f"Measurements saved to {self.save_measurements(path)}"
                )
            except (ValueError, OSError) as err:
                self._report_error(err)

    def prepare(self) -> Job:
        return make_segment_job(source_from_layer(self.image.value), self.settings())
