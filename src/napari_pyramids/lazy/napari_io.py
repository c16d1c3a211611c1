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
    """Read an OME-Zarr multiscale image as one lazy multiscale image layer."""
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
    return [(pyramid.levels, meta, "image")]


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
