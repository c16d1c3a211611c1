"""Per-nucleus measurements of a label image: the table napari shows as features.

One row per label id: its size (pixels, and physical units when a pixel
spacing is given), centroid, mean and integrated intensity of the image under
it, and, for stacks, the range of planes or frames it spans. numpy, scipy and
pandas only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

__all__ = ["measure"]


def measure(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    *,
    scale: Sequence[float] | None = None,
    unit: str | None = None,
    axes: str | None = None,
):
    """Measure every nucleus of ``labels``; return a pandas DataFrame.

    Parameters
    ----------
    labels : ndarray of int
        Instance labels (0 = background), 2-D or a stack.
    image : ndarray, optional
        The intensities, same shape as ``labels``; adds ``mean_intensity``
        and ``integrated_intensity``.
    scale : sequence of float, optional
        Pixel spacing per axis (napari's layer scale); adds the physical
        size (``area`` in 2-D, ``volume`` for z-stacks) and centroid, named
        with ``unit`` when given.
    axes : str, optional
        The axes of ``labels`` ("yx", "zyx", "tyx", "tzyx"; None: the last
        letters of "tzyx"); each leading axis gets its first and last index.

    Returns
    -------
    pandas.DataFrame
        Columns ``label``, ``pixels``, ``centroid_<axis>`` (pixels), the
        intensity and physical columns when asked for, and ``<axis>_first``
        / ``<axis>_last`` for leading axes. Rows are sorted by label.
    """
    import pandas as pd

    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.ndim < 2 or labels.ndim > 4:
        raise ValueError(f"labels must be 2-D to 4-D, got shape {labels.shape}")
    axes = axes or "tzyx"[-labels.ndim :]
    if len(axes) != labels.ndim:
        raise ValueError(f"axes {axes!r} do not fit labels of shape {labels.shape}")
    if image is not None:
        image = np.asarray(image)
        if image.shape != labels.shape:
            raise ValueError(
                f"image {image.shape} and labels {labels.shape} differ in shape"
            )
    if scale is not None and len(scale) != labels.ndim:
        raise ValueError(f"give one scale per axis ({labels.ndim}), got {len(scale)}")
    ids = np.unique(labels)
    ids = ids[ids > 0]
    table: dict[str, np.ndarray] = {"label": ids}
    pixels = ndi.sum_labels(np.ones(labels.shape, np.int64), labels, ids)
    table["pixels"] = pixels.astype(np.int64)
    centroids = np.array(ndi.center_of_mass(np.ones(labels.shape), labels, ids))
    centroids = centroids.reshape(len(ids), labels.ndim)
    for i, axis in enumerate(axes):
        table[f"centroid_{axis}"] = centroids[:, i]
    if image is not None:
        values = image.astype(np.float64)
        total = ndi.sum_labels(values, labels, ids)
        table["mean_intensity"] = total / np.maximum(pixels, 1)
        table["integrated_intensity"] = total
    if scale is not None:
        spatial = [i for i, axis in enumerate(axes) if axis in "zyx"]
        size = float(np.prod([scale[i] for i in spatial]))
        name = "volume" if "z" in axes else "area"
        suffix = f"_{unit}" if unit else ""
        table[f"{name}{suffix}"] = pixels * size
        for i in spatial:
            table[f"centroid_{axes[i]}{suffix}"] = centroids[:, i] * scale[i]
    for i, axis in enumerate(axes):
        if axis in "tz":
            present = np.stack(
                [np.isin(ids, np.unique(plane)) for plane in np.moveaxis(labels, i, 0)]
            )
            table[f"{axis}_first"] = present.argmax(axis=0)
            table[f"{axis}_last"] = len(present) - 1 - present[::-1].argmax(axis=0)
    return pd.DataFrame(table)
