"""The one place that converts between napari layers and arrays + geometry.

Widgets and the console helpers read a layer with :func:`source_from_layer`, hand
plain arrays to the actions (and through them to ``core`` / ``nn`` / ``lazy``),
turn results back into napari ``LayerDataTuple`` s with the builders below, and
add those to a viewer with :func:`add_layer_tuples`. Keeping the conversion here means
scale, translate, axis labels and units are carried over the same way
everywhere (the bug behind cellpose-napari #37 and stardist-napari #13).

Alignment (DESIGN.md): REDUCE keeps sample ``2j``, so octave ``k`` pixel ``j`` sits
on level-0 pixel ``j * 2**k``. As a layer, octave ``k`` gets
``scale = base_scale * 2**k`` on the reduced axes and the base translate, and
overlays the source exactly in world coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_pyramids.core.checks import is_lazy

LayerDataTuple = tuple[Any, dict, str]

#: Diverging colormap for Laplacian bands (zero is the neutral middle colour).
BAND_COLORMAP = "PiYG"


@dataclass(frozen=True)
class Source:
    """An image layer's pixels plus what is needed to put results in register.

    ``data`` is the layer's own array (level 0 of a multiscale layer), never a
    copy: nothing downstream modifies it. ``scale`` and ``translate`` have one
    entry per non-channel axis, as napari stores them.
    """

    data: Any
    name: str
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    channel_axis: int | None = None
    axes_meta: dict = field(default_factory=dict)  # axis_labels, units
    display: dict = field(default_factory=dict)  # colormap, contrast_limits

    @property
    def rgb(self) -> bool:
        return self.channel_axis is not None

    @property
    def spatial_ndim(self) -> int:
        """Number of non-channel axes (the length of ``scale``)."""
        return len(self.scale)

    @property
    def is_lazy(self) -> bool:
        """True for dask or zarr backed data, which should not be loaded whole."""
        return is_lazy(self.data)


#: napari layer classes by the kind names used here.
_KINDS = ("image", "labels", "shapes", "points")


def layer_kind(layer) -> str | None:
    """``"image"``, ``"labels"``, ``"shapes"`` or ``"points"`` for such a napari
    layer; None for anything else (another layer type, None, an array)."""
    from napari import layers

    for kind in _KINDS:
        if isinstance(layer, getattr(layers, kind.capitalize())):
            return kind
    return None


def source_from_layer(layer, *, role: str = "image") -> Source:
    """Read an Image layer into a :class:`Source`, with clear errors for bad picks."""
    if layer is None:
        raise ValueError(f"choose an {role} layer first (the viewer has none selected)")
    if layer_kind(layer) != "image":
        raise TypeError(
            f"{role} must be an Image layer, got a {type(layer).__name__} layer "
            f"{layer.name!r}"
        )
    data = layer.data[0] if layer.multiscale else layer.data
    if 0 in data.shape:
        raise ValueError(
            f"the {role} layer {layer.name!r} is empty (shape {data.shape})"
        )
    axes_meta = {}
    for key in ("axis_labels", "units"):
        value = getattr(layer, key, None)
        if value is not None:
            axes_meta[key] = tuple(str(v) for v in value)
    display = {"contrast_limits": tuple(layer.contrast_limits)}
    if not layer.rgb:
        display["colormap"] = layer.colormap.name
    return Source(
        data=data,
        name=layer.name,
        scale=tuple(float(s) for s in layer.scale),
        translate=tuple(float(t) for t in layer.translate),
        channel_axis=-1 if layer.rgb else None,
        axes_meta=axes_meta,
        display=display,
    )


def octave_transform(
    source: Source, octave: int, reduced_axes: tuple[int, ...]
) -> dict[str, tuple[float, ...]]:
    """``scale`` and ``translate`` that put octave ``octave`` on top of the source.

    ``reduced_axes`` are array axes (non-negative) of the source data; for RGB
    layers the channel axis is last, so array axis ``i`` is layer dimension ``i``.
    """
    factor = 2.0**octave
    scale = [
        s * factor if ax in reduced_axes else s for ax, s in enumerate(source.scale)
    ]
    return {"scale": tuple(scale), "translate": source.translate}


def _spatial_meta(source: Source, octave: int, reduced_axes, *, new_axis=False):
    meta = octave_transform(source, octave, reduced_axes)
    meta.update(source.axes_meta)
    if new_axis:  # a leading stack axis: unit spacing, no offset, labelled
        meta["scale"] = (1.0,) + meta["scale"]
        meta["translate"] = (0.0,) + meta["translate"]
        if "axis_labels" in meta:
            meta["axis_labels"] = ("octave",) + meta["axis_labels"]
        if "units" in meta:
            meta["units"] = ("pixel",) + meta["units"]
    return meta


def band_contrast(band: np.ndarray) -> tuple[float, float]:
    """Contrast limits symmetric around 0 for a Laplacian band (robust 99.5 %)."""
    flat = np.abs(np.asarray(band, dtype=np.float32)).ravel()
    if flat.size > 1_000_000:  # a strided sample is enough for a percentile
        flat = flat[:: flat.size // 1_000_000]
    m = float(np.percentile(flat, 99.5)) if flat.size else 0.0
    m = m if m > 0 else float(flat.max(initial=0.0)) or 1.0
    return (-m, m)


def _display_meta(source: Source, data, *, band: bool) -> dict:
    """Colour settings: diverging around 0 for bands, the source's look otherwise."""
    meta: dict = {"rgb": source.rgb}
    if band:
        if not is_lazy(data):
            meta["contrast_limits"] = band_contrast(data)
        else:  # lazy: a percentile would compute the whole pyramid; estimate instead
            lo, hi = source.display.get("contrast_limits", (0.0, 1.0))
            meta["contrast_limits"] = (-(hi - lo) / 4, (hi - lo) / 4)
        if not source.rgb:  # RGB bands keep colour; symmetric limits put 0 at grey
            meta["colormap"] = BAND_COLORMAP
    else:
        meta.update(source.display)
    return meta


def octave_layer(
    data,
    source: Source,
    octave: int,
    reduced_axes: tuple[int, ...],
    *,
    name: str,
    band: bool = False,
) -> LayerDataTuple:
    """One pyramid level as an Image layer aligned with ``source``."""
    meta = _spatial_meta(source, octave, reduced_axes)
    meta.update(_display_meta(source, data, band=band))
    meta["name"] = name
    meta["metadata"] = {"napari_pyramids": {"source": source.name, "octave": octave}}
    return (data, meta, "image")


def stack_layer(
    stack, source: Source, *, name: str, band: bool = False
) -> LayerDataTuple:
    """Equal-size levels stacked on a new leading axis (a slider flips octaves)."""
    meta = _spatial_meta(source, 0, (), new_axis=True)
    meta.update(_display_meta(source, stack, band=band))
    meta["name"] = name
    return (stack, meta, "image")


def multiscale_layer(
    levels: list, source: Source, *, name: str, band: bool = False
) -> LayerDataTuple:
    """All levels as one multiscale Image layer.

    napari draws level ``k`` of a multiscale layer as if it had been made by
    area averaging (offset ``(2**k - 1) / 2`` level-0 pixels; napari issue #6320),
    while REDUCE keeps sample ``2j``: coarse levels shown this way sit up to half
    a coarse pixel off. Use :func:`octave_layer` when exact overlay matters.
    """
    meta = _spatial_meta(source, 0, ())
    # bands: contrast from the finest band (the residual is low-pass, not signed)
    meta.update(_display_meta(source, levels[0], band=band))
    meta["name"] = name
    meta["multiscale"] = True
    return (levels, meta, "image")


def labels_layer(data, source: Source, *, name: str, **meta) -> LayerDataTuple:
    """A Labels layer on the source grid (same scale and translate)."""
    full = _spatial_meta(source, 0, ())
    full.update(meta)
    full["name"] = name
    return (data, full, "labels")


def map_layer(
    data,
    source: Source,
    *,
    name: str,
    colormap: str,
    contrast_limits: tuple[float, float],
    **meta,
) -> LayerDataTuple:
    """A per-pixel map (a probability, a filter response) as an Image layer.

    It lies on the source grid (same scale and translate) with its own display,
    not the source's: a probability map of an RGB photo is one grey channel.
    """
    full = _spatial_meta(source, 0, ())
    full.update(rgb=False, colormap=colormap, contrast_limits=tuple(contrast_limits))
    full.update(meta)
    full["name"] = name
    return (data, full, "image")


def world_to_data(source: Source, world_coords) -> np.ndarray:
    """Convert world coordinates (N, ndim) to the source's pixel coordinates."""
    world = np.atleast_2d(np.asarray(world_coords, dtype=float))
    return (world - np.asarray(source.translate)) / np.asarray(source.scale)


def result_layer(data, source: Source, *, name: str) -> LayerDataTuple:
    """A processed image on the source grid (same scale and translate), shown alike."""
    meta = _spatial_meta(source, 0, ())
    meta.update(_display_meta(source, data, band=False))
    meta["name"] = name
    return (data, meta, "image")


def mask_source_from_layer(layer, image: Source, *, label: int | None = None) -> Source:
    """Read a Labels, Shapes or Image layer as weights in [0, 1] on ``image``'s grid.

    * Labels: pixels holding ``label`` weigh 1 (any non-zero label when None).
    * Shapes: the shapes are rasterised onto the image grid through world
      coordinates, so they land where they are drawn whatever the layers' scales.
    * Image (grey): values already in [0, 1] are used as they are; others are
      scaled from their minimum (0) to their maximum (1).

    Returns a :class:`Source` whose ``data`` is the float32 weights, with the
    image's geometry and a grey 0-1 display. Raises a ValueError naming the
    problem and the fix for empty layers, another grid, or RGB/constant images.
    """
    if layer is None:
        raise ValueError("choose a mask layer (Labels, Shapes or Image) first")
    kind = layer_kind(layer)
    grid = tuple(image.data.shape)
    if image.channel_axis is not None:
        del_axis = image.channel_axis % len(grid)
        grid = grid[:del_axis] + grid[del_axis + 1 :]
    if kind == "shapes":
        weights = _rasterise_shapes(layer, image, grid)
    elif kind in ("labels", "image"):
        data = np.asarray(layer.data[0] if layer.multiscale else layer.data)
        _check_on_grid(layer, image, data.shape, grid)
        if kind == "labels":
            weights = _label_weights(layer.name, data, label)
        else:
            weights = _image_weights(layer, data)
    else:
        raise TypeError(
            f"the mask must be a Labels, Shapes or Image layer, got a "
            f"{type(layer).__name__} layer {layer.name!r}"
        )
    return Source(
        data=weights,
        name=layer.name,
        scale=image.scale,
        translate=image.translate,
        axes_meta=image.axes_meta,
        display={"colormap": "gray", "contrast_limits": (0.0, 1.0)},
    )


def _check_on_grid(layer, image: Source, shape, grid) -> None:
    if tuple(shape) != grid:
        raise ValueError(
            f"the mask layer {layer.name!r} has shape {tuple(shape)} but image "
            f"{image.name!r} has the grid {grid}; make the mask on that grid (e.g. "
            "a new Labels layer while the image is selected) or resize it"
        )
    same_place = np.allclose(layer.scale, image.scale) and np.allclose(
        layer.translate, image.translate
    )
    if not same_place:
        scale = tuple(float(s) for s in layer.scale)
        translate = tuple(float(t) for t in layer.translate)
        raise ValueError(
            f"the mask layer {layer.name!r} sits elsewhere in the world than image "
            f"{image.name!r} (scale {scale} vs {image.scale}, translate "
            f"{translate} vs {image.translate}); give it the image's "
            "scale and translate"
        )


def _label_weights(name: str, data: np.ndarray, label: int | None) -> np.ndarray:
    selected = data != 0 if label is None else data == label
    if not selected.any():
        if label is None or not data.any():
            raise ValueError(
                f"the Labels layer {name!r} has no painted pixels; paint the region "
                "the mask should select"
            )
        present = ", ".join(str(v) for v in np.unique(data[data != 0])[:10])
        raise ValueError(
            f"the Labels layer {name!r} has no pixel with label {label} (it has "
            f"{present}); pick one of those or tick 'any label'"
        )
    return selected.astype(np.float32)


def _image_weights(layer, data: np.ndarray) -> np.ndarray:
    if layer.rgb:
        raise ValueError(
            f"the mask Image layer {layer.name!r} is RGB; use a grey image (one "
            "weight per pixel) or a Labels layer"
        )
    weights = data.astype(np.float32)
    lo, hi = float(weights.min()), float(weights.max())
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"the mask Image layer {layer.name!r} contains NaN")
    if lo >= 0 and hi <= 1:
        return weights
    if hi == lo:
        raise ValueError(
            f"the mask Image layer {layer.name!r} is constant ({lo:g}), so it cannot "
            "be scaled to [0, 1]; use an image whose values vary, or a Labels layer"
        )
    weights -= lo
    weights /= hi - lo
    return weights


def _rasterise_shapes(layer, image: Source, grid) -> np.ndarray:
    from napari.layers import Shapes

    if len(layer.data) == 0:
        raise ValueError(
            f"the Shapes layer {layer.name!r} has no shapes; draw the region "
            "the mask should select"
        )
    if layer.ndim != len(grid):
        raise ValueError(
            f"the Shapes layer {layer.name!r} has {layer.ndim} dimensions but image "
            f"{image.name!r} has {len(grid)}; draw the shapes on a layer with the "
            "image's dimensions"
        )
    on_grid = [  # vertices: shapes' data -> world -> image pixels
        world_to_data(image, [layer.data_to_world(v) for v in vertices])
        for vertices in layer.data
    ]
    masks = Shapes(on_grid, shape_type=layer.shape_type).to_masks(grid)
    weights = masks.any(axis=0)
    if not weights.any():
        raise ValueError(
            f"the shapes of {layer.name!r} lie outside image {image.name!r}; draw "
            "them over the image"
        )
    return weights.astype(np.float32)


def region_mask(shapes_layer, image_layer) -> np.ndarray:
    """The union of a Shapes layer's shapes as a mask on the image's grid."""
    if not np.allclose(
        shapes_layer.scale[-2:], image_layer.scale[-2:]
    ) or not np.allclose(shapes_layer.translate[-2:], image_layer.translate[-2:]):
        raise ValueError(
            f"draw the region on a Shapes layer with the scale and translate of "
            f"{image_layer.name!r}"
        )
    shape = image_layer.data.shape[-2:]
    if not len(shapes_layer.data):
        raise ValueError(f"the region layer {shapes_layer.name!r} has no shapes")
    masks = shapes_layer.to_masks(mask_shape=shape)
    mask = np.asarray(masks).any(axis=0)
    if not mask.any():
        raise ValueError(f"the region {shapes_layer.name!r} lies outside the image")
    return mask


def rectangle_crop(source: Source, shapes_layer) -> tuple[slice, ...]:
    """Pixel slices of ``source`` under the last shape of ``shapes_layer``.

    The shape's vertices go from the Shapes layer's data coordinates to world
    coordinates and on to the source's pixels, so a rectangle drawn over any
    layer (with its own scale and translate) cuts the right pixels. Only the
    last two (y, x) axes are cut; the bounding box of the shape is used.
    """
    if layer_kind(shapes_layer) != "shapes":
        raise TypeError("choose a Shapes layer holding a rectangle")
    if len(shapes_layer.data) == 0:
        raise ValueError(
            f"the Shapes layer {shapes_layer.name!r} is empty: draw a rectangle "
            "over what you want to find"
        )
    if source.spatial_ndim != 2:
        raise ValueError(
            "a rectangle cuts templates from 2-D images only; for a volume, pick "
            "an image layer holding the sub-volume as the template"
        )
    vertices = np.asarray(shapes_layer.data[-1], dtype=float)[:, -2:]
    world = np.asarray([shapes_layer.data_to_world(v) for v in vertices])[:, -2:]
    pixels = world_to_data(source, world)
    lo = np.floor(pixels.min(axis=0) + 0.5).astype(int)
    hi = np.floor(pixels.max(axis=0) + 0.5).astype(int)
    shape = np.asarray(source.data.shape[:2])
    lo_in, hi_in = np.clip(lo, 0, shape), np.clip(hi, 0, shape)
    if np.any(hi_in - lo_in < 2):
        raise ValueError(
            f"the rectangle (pixels {lo.tolist()} to {hi.tolist()}) lies outside "
            f"the image {source.name!r} of shape {tuple(shape)} or is too thin; "
            "draw it over the image"
        )
    return tuple(slice(a, b) for a, b in zip(lo_in, hi_in))


def add_layer_tuples(viewer, tuples: list[LayerDataTuple]) -> list:
    """Add layer tuples to ``viewer``, updating same-named layers in place.

    An Image or Labels layer is reused when its name and type match and it can
    hold the new data (same dimensions, rgb-ness and multiscale-ness); other
    layers (Points, Shapes carry per-item properties) are replaced at their index.
    Returns the layers, in order.
    """
    from napari.layers import Layer

    layers = []
    for data, meta, layer_type in tuples:
        meta = dict(meta)
        name = meta.get("name")
        old = viewer.layers[name] if name in viewer.layers else None  # noqa: SIM401
        new = Layer.create(data, meta, layer_type)
        if old is not None and _can_update(old, new):
            old.data = new.data
            for key in (
                "scale",
                "translate",
                "contrast_limits",
                "colormap",
                "metadata",
                "features",
            ):
                if key in meta:
                    setattr(old, key, meta[key])
            layers.append(old)
            continue
        if old is not None:
            index = viewer.layers.index(old)
            viewer.layers.remove(old)
            viewer.layers.insert(index, new)
        else:
            viewer.add_layer(new)
        layers.append(new)
    return layers


def _can_update(old, new) -> bool:
    if type(old) is not type(new) or old.ndim != new.ndim:
        return False
    same_image_kind = getattr(old, "rgb", None) == getattr(
        new, "rgb", None
    ) and getattr(old, "multiscale", None) == getattr(new, "multiscale", None)
    return same_image_kind and layer_kind(old) not in ("points", "shapes")
