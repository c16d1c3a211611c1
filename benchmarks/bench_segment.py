"""Score and time napari_pyramids.nn.segment against Otsu + watershed, in one run.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_segment.py \\
        [--data ../shared/data/dsb2018-train] [--threads 2] [--skip-8k] [--skip-speed]

Quality, as the field reports it (:mod:`napari_pyramids.nn.metrics`): AP at
IoU 0.5 and 0.75, mAP over IoU 0.50-0.95 and F1@0.5, pooled over all nuclei
and as the mean over images, of the model (``diameter=None``: estimated) and
of the classical baseline, on

- the validation fold of ``--data`` (:func:`napari_pyramids.nn.data.split_ids`:
  never trained or tuned on), with the share of images where the model's
  mAP is strictly better than the baseline's, and where its misses come from;
- the same images upscaled 2x and 4x (image bicubic, labels nearest) and, for
  those with a median nucleus diameter >= 16 px, reduced 2x (REDUCE, labels
  every second sample): segmentation must not depend on the nucleus size;
- the 512x512 DSB 2018 image ``img2d.tif`` of the ``stardist`` wheel
  (BSD-3-Clause, not in the shared split), fetched once from PyPI with ``pip
  download stardist==0.9.2 --no-deps`` into ``~/.cache/napari-pyramids``;
  skipped without PyPI access.

Speed: megapixels per second of ``segment`` with the diameter given as the
trained size (no resampling) and estimated, and of the baseline, at 1024^2
and 4096^2; the peak resident memory of ``segment`` on an 8192^2 uint16
image in a fresh subprocess (``ru_maxrss`` of the child: input image and
interpreter included). The load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/dsb2018-train"


def otsu_watershed(image: np.ndarray, min_distance: int = 4) -> np.ndarray:
    """Classical baseline: Otsu threshold, distance transform, seeded watershed."""
    smooth = ndi.gaussian_filter(image.astype(np.float32), 1.0)
    mask = smooth > threshold_otsu(smooth)
    distance = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(
        distance, min_distance=min_distance, labels=ndi.label(mask)[0]
    )
    markers = np.zeros(image.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-distance, markers, mask=mask)


def big_image(size: int) -> np.ndarray:
    """A synthetic uint16 nuclei image of ``size`` x ``size`` (a tiled 1024 scene)."""
    from napari_pyramids.nn.synthetic import make_nuclei_image

    tile, _ = make_nuclei_image((1024, 1024), np.random.default_rng(1))
    tile = (tile.astype(np.float32) / tile.max() * 60000).astype(np.uint16)
    reps = -(-size // 1024)
    return np.tile(tile, (reps, reps))[:size, :size]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def memory_child(size: int, threads: int, model: str) -> None:
    """Segment one ``size``-squared image; print seconds and nuclei as JSON."""
    import torch

    torch.set_num_threads(threads)
    from napari_pyramids.nn import segment

    image = big_image(size)
    labels, seconds = timed(segment, image, model, device="cpu")
    print(json.dumps({"seconds": seconds, "nuclei": int(labels.max())}))


def peak_memory(size: int, threads: int, model: str) -> dict:
    """Run :func:`memory_child` in a subprocess; add its peak RSS in MB."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(size)]
        + ["--threads", str(threads), "--model", model],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def speed(model, name: str, threads: int, skip_8k: bool) -> None:
    from napari_pyramids.nn import segment
    from napari_pyramids.nn.rescale import TRAINED_DIAMETER

    header = ("image", "given MP/s", "estimated MP/s", "otsu+ws MP/s", "ratio")
    print(" | ".join(f"{h:>14}" for h in header) + " |  nuclei (model / otsu)")
    for size in (1024, 4096):
        image = big_image(size)
        segment(image[:256, :256], model, device="cpu")  # warm-up
        _, t_given = timed(
            segment, image, model, diameter=TRAINED_DIAMETER, device="cpu"
        )
        labels, t_auto = timed(segment, image, model, device="cpu")
        base, t_base = timed(otsu_watershed, image)
        mp = size * size / 1e6
        print(
            f"{f'{size}x{size}':>14} | {mp / t_given:14.2f} | {mp / t_auto:14.2f} | "
            f"{mp / t_base:14.2f} | {t_base / t_auto:13.2f}x |  "
            f"{labels.max()} / {base.max()}"
        )
    print("(ratio: otsu+ws seconds / segment seconds, diameter estimated);", load())
    if not skip_8k:
        mem = peak_memory(8192, threads, name)
        print(
            f"8192x8192 uint16 (128 MB input), diameter estimated: peak RSS "
            f"{mem['peak_mb']:.0f} MB, {mem['seconds']:.1f} s = "
            f"{67.1 / mem['seconds']:.2f} MP/s, {mem['nuclei']} nuclei; {load()}"
        )


def error_kinds(true: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Why true nuclei went unmatched at IoU 0.5, and predictions that hit nothing.

    ``merged``: the prediction covering most of the nucleus also covers most
    of another one; ``not found``: predictions cover under half of it;
    ``misshapen``: the rest. ``on background``: predictions that touch no
    true nucleus.
    """
    from napari_pyramids.nn.metrics import instance_overlaps

    inter, iou, area_t, _ = instance_overlaps(true, pred)
    kinds = {"merged": 0, "not found": 0, "misshapen": 0, "on background": 0}
    if not inter.shape[1]:
        kinds["not found"] = len(area_t)
        return kinds
    kinds["on background"] = int((inter.sum(axis=0) == 0).sum())
    most = inter > area_t[:, None] / 2  # prediction j covers most of nucleus i
    for i in np.flatnonzero(~(iou >= 0.5).any(axis=1)):
        j = int(inter[i].argmax())
        if inter[i].sum() < area_t[i] / 2:
            kinds["not found"] += 1
        elif most[:, j].sum() - most[i, j] >= 1:
            kinds["merged"] += 1
        else:
            kinds["misshapen"] += 1
    return kinds


def row(name: str, scores) -> str:
    s = scores.summary()
    return (
        f"  {name:<34} AP50 {s['ap50']:.3f}  AP75 {s['ap75']:.3f}  "
        f"mAP {s['map']:.3f}  F1@0.5 {s['f1_50']:.3f} | per image: AP50 "
        f"{s['ap50_image']:.3f}  mAP {s['map_image']:.3f}"
    )


def validation(model, data: Path) -> None:
    from napari_pyramids.core.pyramid import reduce
    from napari_pyramids.nn import segment
    from napari_pyramids.nn.data import list_ids, read_folder, split_ids
    from napari_pyramids.nn.metrics import score_images

    ids = split_ids(list_ids(data))["validation"]
    pairs = read_folder(data, ids)
    nuclei = sum(len(np.unique(p.labels)) - 1 for p in pairs)
    print(f"\nvalidation fold of {data.name}: {len(pairs)} images, {nuclei} nuclei")
    found, seconds = [], 0.0
    for p in pairs:
        labels, t = timed(segment, p.image, model, device="cpu")
        found.append(labels)
        seconds += t
    base = [otsu_watershed(p.image) for p in pairs]
    model_scores = score_images((p.labels, f) for p, f in zip(pairs, found))
    base_scores = score_images((p.labels, b) for p, b in zip(pairs, base))
    given = score_images(
        (p.labels, segment(p.image, model, diameter=p.diameter, device="cpu"))
        for p in pairs
    )
    print(row("model, diameter estimated", model_scores))
    print(row("model, annotated diameter", given))
    print(row("otsu + watershed", base_scores))
    better = model_scores.image_mean_ap() > base_scores.image_mean_ap()
    print(
        f"  model mAP strictly better than otsu+ws on {better.sum()} of "
        f"{len(better)} images ({better.mean():.0%}); {seconds:.1f} s in all"
    )
    kinds = {}
    for p, f in zip(pairs, found):
        for kind, n in error_kinds(p.labels, f).items():
            kinds[kind] = kinds.get(kind, 0) + n
    kinds_base = {}
    for p, b in zip(pairs, base):
        for kind, n in error_kinds(p.labels, b).items():
            kinds_base[kind] = kinds_base.get(kind, 0) + n
    print(f"  misses at IoU 0.5, model: {kinds}")
    print(f"  misses at IoU 0.5, otsu+ws: {kinds_base}")

    print("  scale (diameter estimated; scored against resampled labels):")
    print(row("original", model_scores))
    for factor in (2, 4):
        scaled = []
        for p in pairs:
            h, w = p.image.shape
            image = cv2.resize(
                p.image, (w * factor, h * factor), interpolation=cv2.INTER_CUBIC
            )
            labels = cv2.resize(
                p.labels, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST
            )
            scaled.append((labels, segment(image, model, device="cpu")))
        print(row(f"upscaled {factor}x", score_images(scaled)))
    large = [p for p in pairs if p.diameter >= 16]
    if large:
        original = score_images(
            (p.labels, f) for p, f in zip(pairs, found) if p.diameter >= 16
        )
        reduced = score_images(
            (p.labels[::2, ::2], segment(reduce(p.image), model, device="cpu"))
            for p in large
        )
        print(row(f"{len(large)} images >= 16 px, original", original))
        print(row("  the same reduced 2x", reduced))


STARDIST_WHEEL = "stardist==0.9.2"


def real_annotated() -> tuple[np.ndarray, np.ndarray] | None:
    """The DSB 2018 sample image of the stardist wheel and its mask, or None."""
    import glob
    import io
    import zipfile

    import tifffile

    cache = Path.home() / ".cache" / "napari-pyramids"
    wheels = glob.glob(str(cache / "stardist-0.9.2-*.whl"))
    if not wheels:
        fetch = [sys.executable, "-m", "pip", "download", STARDIST_WHEEL]
        fetch += ["--no-deps", "--only-binary=:all:", "-d", str(cache), "-q"]
        if subprocess.run(fetch, capture_output=True, timeout=300).returncode:
            return None
        wheels = glob.glob(str(cache / "stardist-0.9.2-*.whl"))
    if not wheels:
        return None
    with zipfile.ZipFile(wheels[0]) as wheel:
        image, mask = (
            tifffile.imread(io.BytesIO(wheel.read(f"stardist/data/images/{n}.tif")))
            for n in ("img2d", "mask2d")
        )
    return image, mask


def stardist_image(model) -> None:
    from napari_pyramids.nn import segment
    from napari_pyramids.nn.metrics import score_images

    real = real_annotated()
    if real is None:
        print("\nstardist img2d.tif unavailable (no PyPI access); skipped")
        return
    image, truth = real
    print(f"\nstardist img2d.tif {image.shape}, {len(np.unique(truth)) - 1} nuclei:")
    for name, fn in (
        ("model, diameter estimated", segment),
        ("otsu + watershed", otsu_watershed),
    ):
        pred, seconds = timed(fn, image, *((model,) if fn is segment else ()))
        print(row(name, score_images([(truth, pred)])) + f"  ({seconds:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="nuclei", help="model name or weights file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-8k", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.threads, args.model)
        return

    import torch

    torch.set_num_threads(args.threads)
    from napari_pyramids.nn import load_model

    model = load_model(args.model)
    print(f"torch {torch.__version__}, {args.threads} CPU threads; {load()}")
    if not args.skip_speed:
        speed(model, args.model, args.threads, args.skip_8k)
    if (args.data / "images").is_dir():
        validation(model, args.data)
    else:
        print(f"\n{args.data}: no annotated data; validation skipped")
    stardist_image(model)


if __name__ == "__main__":
    main()
