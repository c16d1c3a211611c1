"""Segment a folder of images: one labels file per image and one measurements CSV.

``python -m napari_pyramids segment IN_DIR OUT_DIR`` (and
:func:`segment_folder` from the console) segments every tif, png and OME-Zarr
image of ``IN_DIR``. Each result is written beside its final name and moved
into place, with its measurements, so an interrupted run never leaves a file
that looks done; a re-run skips what is done; an unreadable file is reported
and the others go on. GUI-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_pyramids.files import write_atomically

__all__ = ["FolderReport", "segment_folder"]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
MEASUREMENTS = "measurements.csv"


@dataclass
class FolderReport:
    """What :func:`segment_folder` did: files segmented, skipped, failed."""

    segmented: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    measurements: Path | None = None


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".")
        and (
            (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            or (p.is_dir() and p.name.lower().endswith(".zarr"))
        )
    )


def _read(path: Path) -> np.ndarray:
    """The pixels of one image file (a 2-D plane or a z-stack); ValueError if not."""
    if path.is_dir():
        from napari_pyramids.lazy.ome_zarr import read_ome_zarr

        return np.asarray(read_ome_zarr(path).levels[0])
    if path.suffix.lower() == ".png":
        from napari_pyramids.nn.data import read_image

        return read_image(path)
    import tifffile

    try:
        array = np.squeeze(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many kinds for a broken file
        raise ValueError(f"not a readable tif ({exc})") from exc
    if array.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D image or a z-stack, got shape {array.shape}")
    return array


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.zarr", ".zarr", *IMAGE_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def segment_folder(
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    model="nuclei",
    diameter: float | None = None,
    device: str = "auto",
    progress: Callable[[int, int, str], None] | None = None,
) -> FolderReport:
    """Segment every image of ``in_dir`` into ``out_dir``.

    Writes ``<name>_labels.tif`` per image, ``<name>_measurements.csv`` beside
    it, and ``measurements.csv`` with every image's nuclei (column
    ``image``). Images whose labels exist are skipped. ``progress(done,
    total, name)`` is called after every image.
    """
    import pandas as pd
    import tifffile

    from napari_pyramids.core.measure import measure
    from napari_pyramids.nn.infer import segment
    from napari_pyramids.nn.weights import load_model

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise FileNotFoundError(f"{in_dir}: no such folder")
    if (
        out_dir.resolve() == in_dir.resolve()
        or in_dir.resolve() in out_dir.resolve().parents
    ):
        raise ValueError(
            f"{out_dir} is inside {in_dir}: write the labels to a folder outside the "
            "images, so a re-run does not take them for images"
        )
    files = _images(in_dir)
    if not files:
        raise ValueError(
            f"{in_dir}: no images ({', '.join(IMAGE_SUFFIXES)} or OME-Zarr) in it"
        )
    net = load_model(model) if isinstance(model, (str, Path)) else model
    out_dir.mkdir(parents=True, exist_ok=True)
    report = FolderReport()
    for done, path in enumerate(files, 1):
        stem = _stem(path)
        target = out_dir / f"{stem}_labels.tif"
        table = out_dir / f"{stem}_measurements.csv"
        if target.exists() and table.exists():
            report.skipped.append(path.name)
        else:
            try:
                image = _read(path)
                labels = segment(image, net, diameter=diameter, device=device)
            except (ValueError, OSError) as exc:
                report.failed[path.name] = str(exc)
            else:
                rows = measure(labels, image)
                rows.insert(0, "image", path.name)
                write_atomically(
                    table, lambda p, rows=rows: rows.to_csv(p, index=False)
                )
                write_atomically(target, lambda p, lab=labels: tifffile.imwrite(p, lab))
                report.segmented.append(path.name)
        if progress is not None:
            progress(done, len(files), path.name)
    tables = [
        pd.read_csv(out_dir / f"{_stem(p)}_measurements.csv")
        for p in files
        if (out_dir / f"{_stem(p)}_measurements.csv").exists()
    ]
    if tables:
        combined = pd.concat(tables, ignore_index=True)
        report.measurements = out_dir / MEASUREMENTS
        write_atomically(report.measurements, lambda p: combined.to_csv(p, index=False))
    return report
