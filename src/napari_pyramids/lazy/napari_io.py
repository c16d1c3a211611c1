"""npe2 reader and writer: OME-Zarr pyramids in and out of napari.

Thin adapters between napari's reader/writer contract (paths, layer data and
attribute dicts) and :mod:`napari_pyramids.lazy.ome_zarr`; napari itself is not
imported.

The reader opens the pyramid lazily as *one multiscale image layer*. napari's
multiscale renderer assumes area-averaged levels and draws level ``k`` shifted
by ``(2**k - 1) / 2`` level-0 pixels (napari issue #6320), while REDUCE keeps
sample ``2j`` (translation 0, as recorded in the file). So while a coarse level
is on screen the picture sits up to half a coarse pixel off; level 0 and the
stored metadata are exact. For exact overlays of each octave, use the Pyramid
widget's per-octave layers.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_pyramids.lazy.ome_zarr import read_ome_zarr, write_ome_zarr
from napari_pyramids.lazy.ome_zarr_labels import (
    read_ome_zarr_labels,
    write_ome_zarr_labels,
)


def get_reader(path):
    """Return :func:`read_pyramid` when ``path`` is an OME-Zarr multiscale image."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    folder = Path(os.fspath(path))
    if not folder.is_dir():
        return None
    if not any((folder / f).is_file() for f in ("zarr.json", ".zattrs", ".zgroup")):
        return None
    try:
        read_ome_zarr(folder)  # checks the metadata and opens every level
    except ValueError:  # read_ome_zarr's one error for what it cannot read
        return None
    return read_pyramid


def read_pyramid(path) -> list[tuple]:
    """Read an OME-Zarr image as one lazy multiscale image layer, plus its labels.

    Each NGFF label image of the store (``labels/<name>``) becomes a lazy
    multiscale Labels layer on the image's grid.
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    pyramid = read_ome_zarr(path)
    spatial = [ax for ax, name in enumerate(pyramid.axes) if name != "c"]
    meta = {
        "name": pyramid.name or Path(os.fspath(path)).name,
        "multiscale": True,
        "scale": [pyramid.scale[ax] for ax in spatial],
        "translate": [pyramid.translate[ax] for ax in spatial],
        "axis_labels": [pyramid.axes[ax] for ax in spatial],
    }
    if "c" in pyramid.axes:
        meta["channel_axis"] = pyramid.axes.index("c")
    layers = [(pyramid.levels, meta, "image")]
    for label_name, labels in read_ome_zarr_labels(path).items():
        layers.append(
            (
                labels.levels,
                {
                    "name": f"{meta['name']} {label_name}",
                    "multiscale": True,
                    "scale": list(labels.scale),
                    "translate": list(labels.translate),
                },
                "labels",
            )
        )
    return layers


def write_pyramid(path: str, data, attributes: dict) -> list[str]:
    """Save an image layer as an OME-Zarr pyramid ("Save pyramid as OME-Zarr").

    A multiscale layer is written as it is (its levels must be the ceil halves
    of level 0); any other image layer gets its Gaussian pyramid, computed block
    by block, so dask-backed layers are never loaded whole. The layer's scale and
    translate become level 0's coordinate transformations.
    """
    spatial = len(attributes.get("scale") or ()) or None
    write_ome_zarr(
        list(data) if attributes.get("multiscale") else data,
        path,
        channel_axis=-1 if attributes.get("rgb") else None,
        scale=attributes.get("scale") if spatial else None,
        translate=attributes.get("translate") if spatial else None,
        name=attributes.get("name"),
        # napari's save dialog has already asked before replacing an existing
        # path; the writer still refuses anything but an OME-Zarr image it wrote
        overwrite=True,
    )
    return [path]


def write_image_with_labels(path: str, layer_data: list[tuple]) -> list[str]:
    """Save an image layer and its Labels layers as one OME-Zarr.

    The image is written as by :func:`write_pyramid`; each Labels layer goes
    into its ``labels/`` group under the layer's name
    (:func:`~napari_pyramids.lazy.ome_zarr_labels.write_ome_zarr_labels`),
    with a label pyramid on the image's levels.
    """
    images = [item for item in layer_data if item[2] == "image"]
    labels = [item for item in layer_data if item[2] == "labels"]
    if len(images) != 1:
        raise ValueError(
            f"select one image layer to save the labels beside, got {len(images)}"
        )
    data, attributes, _ = images[0]
    if not labels:
        return write_pyramid(path, data, attributes)
    base = data[0] if attributes.get("multiscale") else data
    shape = tuple(base.shape[:-1] if attributes.get("rgb") else base.shape)
    for label_data, label_attrs, _ in labels:
        level0 = label_data[0] if label_attrs.get("multiscale") else label_data
        if tuple(level0.shape) != shape:
            raise ValueError(
                f"labels {label_attrs.get('name')!r} of shape {tuple(level0.shape)} "
                f"do not fit the image {attributes.get('name')!r} of shape {shape}"
            )
    write_pyramid(path, data, attributes)
    for label_data, label_attrs, _ in labels:
        level0 = label_data[0] if label_attrs.get("multiscale") else label_data
        name = str(label_attrs.get("name") or "labels").replace("/", "_")
        write_ome_zarr_labels(level0, path, name=name)
    return [path]
