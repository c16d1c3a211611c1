"""Console conveniences: what the widgets do, as one call in napari's console.

>>> import napari_pyramids as npp
>>> npp.add_pyramid(viewer, "astronaut", kind="laplacian")   # doctest: +SKIP
"""

from __future__ import annotations

from napari_pyramids.actions import pyramid, run_to_completion
from napari_pyramids.layers import add_layer_tuples, source_from_layer

#: The Pyramid widget's defaults, which add_pyramid shares.
_DEFAULTS = pyramid.PyramidSettings()


def _layer(viewer, layer):
    """Accept a layer or a layer name (of ``viewer``'s layers)."""
    if not hasattr(viewer, "layers"):
        raise TypeError(
            "viewer must be a napari.Viewer (in napari's console it is `viewer`; "
            f"in a script, napari.Viewer() or napari.current_viewer()), got {viewer!r}"
        )
    if isinstance(layer, str):
        if layer not in viewer.layers:
            names = ", ".join(repr(lyr.name) for lyr in viewer.layers) or "none"
            raise ValueError(
                f"no layer named {layer!r} in the viewer (layers: {names})"
            )
        return viewer.layers[layer]
    return layer


def add_pyramid(
    viewer,
    layer,
    kind: str = _DEFAULTS.kind,
    output: str = _DEFAULTS.output,
    *,
    levels: int | None = _DEFAULTS.levels,
    reduce_z: bool = _DEFAULTS.reduce_z,
    min_size: int = _DEFAULTS.min_size,
    keep_dtype: bool = _DEFAULTS.keep_dtype,
) -> list:
    """Add the Gaussian or Laplacian pyramid of an image layer to ``viewer``.

    Parameters
    ----------
    viewer : napari.Viewer
    layer : napari.layers.Image or str
        The layer or its name.
    kind : {"gaussian", "laplacian"}
    output : {"octaves", "multiscale", "stack"}
        Separate layers aligned with the source (exact), one multiscale layer
        (napari draws it with a half-coarse-pixel offset, napari #6320), or an
        equal-size stack on a new leading axis.
    levels, reduce_z, min_size
        As in :func:`napari_pyramids.gaussian_pyramid`.
    keep_dtype : bool
        Gaussian octaves in the image's dtype (uint8 stays uint8) rather than float.

    Returns
    -------
    list of napari.layers.Layer
        The layers added (or updated in place when names already exist).
    """
    source = source_from_layer(_layer(viewer, layer))
    settings = pyramid.PyramidSettings(
        kind=kind,
        levels=levels,
        output=output,
        reduce_z=reduce_z,
        min_size=min_size,
        keep_dtype=keep_dtype,
    )
    result = run_to_completion(pyramid.run(source, settings))
    return add_layer_tuples(viewer, result.layers)
