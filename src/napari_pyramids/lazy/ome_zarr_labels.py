"""Instance labels inside an OME-Zarr image: the NGFF ``labels/`` group.

A labels image is stored beside the image it belongs to (``<image>/labels/
<name>``) as its own multiscale pyramid whose levels are the image's grids:
level ``k`` keeps every ``2**k``-th sample from 0 along the axes the image
reduces (nearest sampling, never interpolated, so ids stay ids), which is
where REDUCE puts the image's level ``k``. The coordinate transformations
are the image's (translation 0 for REDUCE levels). The metadata is written
by ome-zarr-py, so NGFF readers (ome-zarr-py, napari-ome-zarr) open it.
"""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np
import zarr
from ome_zarr.format import format_from_version
from ome_zarr.writer import write_multiscale_labels

from napari_pyramids.lazy.ome_zarr import OmeZarrPyramid, read_ome_zarr

__all__ = ["read_ome_zarr_labels", "write_ome_zarr_labels"]


def _image_metadata(group) -> tuple[str, dict]:
    """The NGFF version and the first multiscales entry of an image group."""
    attrs = group.attrs.asdict()
    ome = attrs.get("ome", attrs)
    version = str(ome.get("version") or ome["multiscales"][0].get("version", "0.4"))
    return version, ome["multiscales"][0]


def _label_names(labels_group) -> list[str]:
    attrs = labels_group.attrs.asdict()
    names = attrs.get("ome", attrs).get("labels", [])
    return [n for n in names if isinstance(n, str)]


def write_ome_zarr_labels(
    labels, path, *, name: str = "labels", overwrite: bool = False
) -> Path:
    """Store ``labels`` in the OME-Zarr image at ``path`` as ``labels/<name>``.

    ``labels`` (a numpy or dask array of integers) has the shape of the
    image's level 0 without its channel axis. The label pyramid has as many
    levels as the image, each on that level's grid. An existing label of the
    same name is refused unless ``overwrite``.
    """
    where = Path(os.fspath(path))
    image = read_ome_zarr(where)  # a ValueError naming the problem if not an image
    spatial = [ax for ax, n in enumerate(image.axes) if n != "c"]
    shape = tuple(image.levels[0].shape[ax] for ax in spatial)
    labels = labels if isinstance(labels, da.Array) else np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if tuple(labels.shape) != shape:
        raise ValueError(
            f"labels of shape {tuple(labels.shape)} do not fit the image at {where}, "
            f"whose level 0 is {shape} (without channels)"
        )
    if not name or "/" in name:
        raise ValueError(f"a label name is a plain folder name, got {name!r}")
    group = zarr.open_group(str(where), mode="r+")
    if "labels" in group and name in _label_names(group["labels"]) and not overwrite:
        raise FileExistsError(
            f"{where} already holds labels {name!r}; pass overwrite=True to "
            "replace them"
        )
    version, multiscale = _image_metadata(group)
    pyramid, transforms = [], []
    scales = [
        next(
            t["scale"]
            for t in dataset["coordinateTransformations"]
            if t["type"] == "scale"
        )
        for dataset in multiscale["datasets"]
    ]
    for k, level in enumerate(image.levels):
        # level k keeps every step-th sample: its pixel is step level-0 pixels
        steps = [max(1, round(scales[k][ax] / scales[0][ax])) for ax in spatial]
        sampled = labels[tuple(slice(None, None, s) for s in steps)]
        if tuple(sampled.shape) != tuple(level.shape[ax] for ax in spatial):
            raise ValueError(
                f"level {k} of {where} is not every 2**k-th sample of level 0; "
                "labels can only be stored beside REDUCE pyramids"
            )
        pyramid.append(sampled)
        transforms.append(
            [
                {
                    "type": t["type"],
                    t["type"]: [t[t["type"]][ax] for ax in spatial],
                }
                for t in multiscale["datasets"][k]["coordinateTransformations"]
            ]
        )
    axes = [multiscale["axes"][ax] for ax in spatial]
    write_multiscale_labels(
        pyramid,
        group,
        name,
        fmt=format_from_version(version),
        axes=axes,
        coordinate_transformations=transforms,
    )
    return where / "labels" / name


def read_ome_zarr_labels(path) -> dict[str, OmeZarrPyramid]:
    """The label images stored in the OME-Zarr image at ``path``, by name (lazy)."""
    where = Path(os.fspath(path))
    try:
        group = zarr.open_group(str(where), mode="r")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where}: not a readable zarr group ({exc})") from exc
    if "labels" not in group:
        return {}
    return {
        name: read_ome_zarr(where / "labels" / name)
        for name in _label_names(group["labels"])
    }
