"""The Blend widget: two image layers and a mask in, a seamless blend out.

:func:`make_blend_job` holds the computation (GUI-free, yields per pyramid level);
:class:`BlendWidget` only gathers the layers and settings. The mask may be a
Labels layer (one label or any), a Shapes layer (rasterised onto image A's
grid) or an Image layer (scaled to [0, 1]); :mod:`napari_pyramids.layers`
turns each into weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox, create_widget

from napari_pyramids.core.blend import (
    DEFAULT_FEATHER_WIDTH,
    cut_blend,
    feather_blend,
    iter_blend,
)
from napari_pyramids.core.pyramid import (
    DEFAULT_MIN_SIZE,
    gaussian_pyramid,
    pyramid_depth,
    spatial_axes,
)
from napari_pyramids.layers import (
    Source,
    mask_source_from_layer,
    octave_layer,
    result_layer,
    source_from_layer,
)
from napari_pyramids.progress import map_steps
from napari_pyramids.widgets._base import Job, JobWidget, Step

METHODS = {
    "pyramid": "Laplacian pyramid (seamless)",
    "feather": "feather (alpha with a blurred mask)",
    "cut": "hard cut",
}
MASK_TYPES = ("labels", "shapes", "image")


@dataclass(frozen=True)
class BlendSettings:
    """How to blend (validated by :func:`make_blend_job`)."""

    method: str = "pyramid"
    levels: int | None = None
    width: float = DEFAULT_FEATHER_WIDTH
    show_mask_octaves: bool = False


def blend_name(method: str, a: Source, b: Source) -> str:
    """Stable output name, so a re-run with the same method updates its layer."""
    return f"{method} blend({a.name}, {b.name})"


def make_blend_job(a: Source, b: Source, mask: Source, settings: BlendSettings) -> Job:
    """Validate everything up front; return the job that blends and builds layers."""
    if settings.method not in METHODS:
        raise ValueError(
            f"method must be one of {tuple(METHODS)}, got {settings.method!r}"
        )
    levels = settings.levels if settings.method == "pyramid" else None
    # iter_blend checks shapes, dtypes, the mask and levels when called, so bad
    # input is reported now, on the GUI thread, whichever method runs.
    steps = iter_blend(a.data, b.data, mask.data, levels, channel_axis=a.channel_axis)
    n_levels = pyramid_depth(a.data.shape, levels, channel_axis=a.channel_axis)
    if settings.method == "pyramid":

        def compute():
            return (yield from _as_steps(steps))

    else:
        func = feather_blend if settings.method == "feather" else cut_blend
        kwargs = {"width": settings.width} if settings.method == "feather" else {}

        def compute():
            yield Step(0, 1, f"{settings.method} blending")
            return func(
                a.data, b.data, mask.data, channel_axis=a.channel_axis, **kwargs
            )

    return Job(
        run=lambda: _blend_job(compute, a, b, mask, settings, n_levels),
        description=f"{METHODS[settings.method]} of {a.name} and {b.name}",
    )


def _as_steps(steps):
    """Turn the core's ``(done, total)`` progress into :class:`Step` items."""
    return map_steps(
        steps, lambda p: Step(p[0], p[1], f"pyramid step {p[0]} of {p[1]}")
    )


def _blend_job(compute, a: Source, b: Source, mask: Source, settings, n_levels):
    result = yield from compute()
    tuples = [result_layer(result, a, name=blend_name(settings.method, a, b))]
    if settings.show_mask_octaves:
        axes = spatial_axes(mask.data.ndim)
        octaves = gaussian_pyramid(mask.data, n_levels)
        tuples += [
            octave_layer(level, mask, k, axes, name=f"{mask.name} gaussian octave {k}")
            for k, level in enumerate(octaves)
        ]
    return tuples


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

    def __init__(self, viewer: napari.viewer.Viewer):  # noqa: F821
        super().__init__(viewer)
        import napari

        self.image_a = create_widget(annotation=napari.layers.Image, label="image A")
        self.image_b = create_widget(annotation=napari.layers.Image, label="image B")
        self.mask = ComboBox(label="mask (A where set)", choices=self._mask_layers)
        self.any_label = CheckBox(text="any label (all painted pixels)", value=True)
        self.label_value = SpinBox(label="label", min=1, max=2**31 - 1, value=1)
        self.method = ComboBox(
            label="method",
            choices=[(text, key) for key, text in METHODS.items()],
            value="pyramid",
        )
        self.auto_levels = CheckBox(
            text=f"all octaves down to {DEFAULT_MIN_SIZE} px", value=True
        )
        self.levels = SpinBox(label="levels", min=1, max=20, value=5)
        self.feather_width = FloatSpinBox(
            label="feather width (px)", min=0, max=1000, value=DEFAULT_FEATHER_WIDTH
        )
        self.show_mask_octaves = CheckBox(text="show mask octaves", value=False)
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
            if layer._type_string == kind
        ]

    def _sync(self, *_):
        """Show only the options that apply to the current choices."""
        mask = self.mask.value
        is_labels = mask is not None and mask._type_string == "labels"
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
        return make_blend_job(a, b, mask, self.settings())
