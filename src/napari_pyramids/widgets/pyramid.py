"""The Pyramid widget: an image layer in, its Gaussian or Laplacian octaves out.

:func:`pyramid_job` holds the whole computation (GUI-free, yields per octave) and
is shared by :class:`PyramidWidget` and the console helper
:func:`napari_pyramids.add_pyramid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, Label, SpinBox, create_widget

from napari_pyramids.core.pyramid import (
    DEFAULT_MIN_SIZE,
    equal_size_levels,
    iter_pyramid,
    pyramid_depth,
    spatial_axes,
)
from napari_pyramids.layers import (
    Source,
    multiscale_layer,
    octave_layer,
    source_from_layer,
    stack_layer,
)
from napari_pyramids.widgets._base import Job, JobWidget, Step

if TYPE_CHECKING:
    import napari

KINDS = ("gaussian", "laplacian")
OUTPUTS = {
    "octaves": "octaves as aligned layers",
    "multiscale": "one multiscale layer",
    "stack": "equal-size stack (slider)",
}
MULTISCALE_NOTE = (
    "napari draws multiscale levels as if area-averaged (napari #6320): coarse\n"
    "levels may look shifted by up to half a coarse pixel. Octave layers are exact."
)


@dataclass(frozen=True)
class PyramidSettings:
    """What to compute and how to show it (validated by :func:`make_pyramid_job`)."""

    kind: str = "gaussian"
    levels: int | None = None
    output: str = "octaves"
    reduce_z: bool = False
    min_size: int = DEFAULT_MIN_SIZE
    keep_dtype: bool = True  # Gaussian octaves of a uint8 image stay uint8


def make_pyramid_job(source: Source, settings: PyramidSettings) -> Job:
    """Validate ``settings`` for ``source``; return the job that builds the layers."""
    if settings.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {settings.kind!r}")
    if settings.output not in OUTPUTS:
        raise ValueError(
            f"output must be one of {tuple(OUTPUTS)}, got {settings.output!r}"
        )
    if source.is_lazy and settings.output != "multiscale":
        raise ValueError(
            f"{source.name!r} is dask/zarr backed (out of core): show its pyramid as "
            f"{OUTPUTS['multiscale']!r}, computed chunk by chunk as you view it; "
            f"{OUTPUTS[settings.output]!r} would load it whole"
        )
    ndim = len(source.data.shape)
    n_levels = pyramid_depth(
        source.data.shape,
        settings.levels,
        channel_axis=source.channel_axis,
        reduce_z=settings.reduce_z,
        min_size=settings.min_size,
    )
    if n_levels < 2:
        raise ValueError(_one_level_message(source, settings))
    axes = spatial_axes(
        ndim, channel_axis=source.channel_axis, reduce_z=settings.reduce_z
    )
    return Job(
        run=lambda: pyramid_job(source, settings, n_levels, axes),
        description=f"{settings.kind.capitalize()} pyramid of {source.name}",
    )


def _one_level_message(source: Source, settings: PyramidSettings) -> str:
    """Why a one-level pyramid is refused: it would only add a copy of the image."""
    if settings.levels is not None:
        return (
            "levels=1 is the image itself (octave 0), so there is nothing to add; "
            "ask for 2 or more levels"
        )
    return (
        f"{source.name!r} (shape {tuple(source.data.shape)}) is smaller than twice "
        f"min_size={settings.min_size}, so its pyramid is the image alone; lower "
        "min_size or pass levels=2 or more"
    )


def level_name(source: Source, kind: str, k: int, n_levels: int) -> str:
    """Layer name for octave ``k``: says source, kind and octave."""
    if kind == "laplacian" and k == n_levels - 1:
        return f"{source.name} laplacian residual (octave {k})"
    return f"{source.name} {kind} octave {k}"


def pyramid_job(source: Source, settings: PyramidSettings, n_levels: int, axes):
    """Compute the pyramid octave by octave, yielding progress; return layer tuples."""
    band = settings.kind == "laplacian"
    total = n_levels + (1 if settings.output == "stack" else 0)
    levels = []
    octaves = iter_pyramid(
        source.data,
        n_levels,
        kind=settings.kind,
        channel_axis=source.channel_axis,
        reduce_z=settings.reduce_z,
        preserve_dtype=settings.keep_dtype and not band,
    )
    for k, level in enumerate(octaves):
        levels.append(level)
        yield Step(k + 1, total, f"octave {k} of {n_levels - 1}: {level.shape}")
    name = f"{source.name} {settings.kind}"
    if settings.output == "multiscale":
        return [multiscale_layer(levels, source, name=f"{name} pyramid", band=band)]
    if settings.output == "stack":
        stack = equal_size_levels(levels)
        yield Step(total, total, "stacked")
        return [stack_layer(stack, source, name=f"{name} octaves (stack)", band=band)]
    # Gaussian octave 0 is the source itself: adding it again would only clutter.
    first = 1 if not band and n_levels > 1 else 0
    return [
        octave_layer(
            levels[k],
            source,
            k,
            axes,
            name=level_name(source, settings.kind, k, n_levels),
            band=band and k < n_levels - 1,
        )
        for k in range(first, n_levels)
    ]


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

        self.image = create_widget(annotation=napari.layers.Image, label="image")
        self.kind = ComboBox(
            label="pyramid",
            choices=[
                ("Gaussian (blurred octaves)", "gaussian"),
                ("Laplacian (band-pass)", "laplacian"),
            ],
            value="gaussian",
        )
        self.auto_levels = CheckBox(
            text=f"all octaves down to {DEFAULT_MIN_SIZE} px", value=True
        )
        self.levels = SpinBox(label="levels", min=1, max=20, value=4, enabled=False)
        self.output = ComboBox(
            label="show as",
            choices=[(text, key) for key, text in OUTPUTS.items()],
            value="octaves",
        )
        self.reduce_z = CheckBox(text="reduce z too (isotropic volume)", value=False)
        self.keep_dtype = CheckBox(
            text="Gaussian octaves keep the image dtype", value=True
        )
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
        self.auto_levels.changed.connect(self._sync)
        self.output.changed.connect(self._sync)
        self.kind.changed.connect(self._sync)
        self.image.changed.connect(self._sync)
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
        source = source_from_layer(self.image.value)
        return make_pyramid_job(source, self.settings())
