"""Benchmark napari_pyramids.nn.segment against a classical Otsu + watershed baseline.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_segment.py [--threads 2] [--skip-8k]

Prints one table: megapixels per second of ``segment`` (model "nuclei", CPU)
and of the baseline at 1024x1024 and 4096x4096; the peak resident memory of
``segment`` on an 8192x8192 uint16 image, measured in a fresh subprocess
(``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in the parent: the child's whole
peak, input image and interpreter included); and F1 at IoU 0.5 of both methods
on the three held-out synthetic sets (seeds 1000, 2024, 4242), with where
the model's errors there come from (:func:`held_out_scores`). The load
average is printed with the numbers: on a shared machine they move with it.

Real data: both methods are scored against the hand-made annotation of a real
fluorescence nuclei image, the 512x512 DSB 2018 image (and mask) that ships
inside the ``stardist`` wheel (BSD-3-Clause). The wheel is fetched once from
PyPI with ``pip download stardist==0.9.2 --no-deps`` into
``~/.cache/napari-pyramids`` (only the two TIFFs are read; stardist is not
installed); without PyPI access this part is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed


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


def memory_child(size: int, threads: int) -> None:
    """Segment one ``size``-squared image; print seconds and nuclei as JSON."""
    import torch

    torch.set_num_threads(threads)
    from napari_pyramids.nn import segment

    image = big_image(size)
    labels, seconds = timed(segment, image, device="cpu")
    print(json.dumps({"seconds": seconds, "nuclei": int(labels.max())}))


def peak_memory(size: int, threads: int) -> dict:
    """Run :func:`memory_child` in a subprocess; add its peak RSS in MB."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(size)]
        + ["--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def _add(total: list[int], result: dict) -> None:
    """Pool a :func:`match_instances` result: F1 = total[0] / total[1]."""
    total[0] += 2 * result["tp"]
    total[1] += 2 * result["tp"] + result["fp"] + result["fn"]


def missed_kinds(true: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Why the true nuclei without a match (IoU <= 0.5) were missed.

    ``merged``: the prediction covering most of the nucleus also covers most
    of another one; ``not found``: predictions cover under half of it;
    ``misshapen``: the rest (one prediction, too large or too small).
    """
    from napari_pyramids.nn.instances import instance_overlaps

    inter, iou, area_t, _ = instance_overlaps(true, pred)
    kinds = {"merged": 0, "not found": 0, "misshapen": 0}
    if not inter.shape[1]:
        kinds["not found"] = len(area_t)
        return kinds
    most = inter > area_t[:, None] / 2  # prediction j covers most of nucleus i
    for i in np.flatnonzero(~(iou > 0.5).any(axis=1)):
        j = int(inter[i].argmax())
        if inter[i].sum() < area_t[i] / 2:
            kinds["not found"] += 1
        elif most[:, j].sum() - most[i, j] >= 1:
            kinds["merged"] += 1
        else:
            kinds["misshapen"] += 1
    return kinds


def held_out_scores(model) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
    """One pass over the held-out sets: F1@0.5 per set, and error sources.

    Per set: pooled F1 of model and baseline, baseline seconds per image.
    Over all sets: the model's F1, the missed nuclei by :func:`missed_kinds`,
    and two halves of the pipeline scored against the truth: the predicted
    foreground grown from the true cores (perfect seeds), and the predicted
    cores grown over the true foreground (perfect extent). The half whose
    fix gains more is the one to improve.
    """
    from napari_pyramids.core._steps import drain
    from napari_pyramids.nn.infer import CORE_THRESHOLD, FOREGROUND_BELOW, predict_steps
    from napari_pyramids.nn.instances import instances_from_masks, match_instances
    from napari_pyramids.nn.synthetic import (
        CORE,
        HELD_OUT_SETS,
        classes_from_labels,
        make_dataset,
    )

    per_set = {}
    pooled = {"model": [0, 0], "true seeds": [0, 0], "true foreground": [0, 0]}
    kinds = {"merged": 0, "not found": 0, "misshapen": 0}
    for seed, count in HELD_OUT_SETS.items():
        sums = {"model": [0, 0], "otsu": [0, 0]}
        otsu_seconds = 0.0
        for image, labels in make_dataset(count, (256, 256), seed=seed):
            found = drain(predict_steps(image, model, device="cpu", probabilities=True))
            base, seconds = timed(otsu_watershed, image)
            otsu_seconds += seconds
            result = match_instances(labels, found.labels)
            _add(sums["model"], result)
            _add(pooled["model"], result)
            _add(sums["otsu"], match_instances(labels, base))
            probs, classes = found.probabilities, classes_from_labels(labels)
            core = probs["core"] > CORE_THRESHOLD
            foreground = probs["background"] < FOREGROUND_BELOW
            for name, pred in (
                ("true seeds", instances_from_masks(classes == CORE, foreground)),
                ("true foreground", instances_from_masks(core, classes > 0)),
            ):
                _add(pooled[name], match_instances(labels, pred))
            for kind, n in missed_kinds(labels, found.labels).items():
                kinds[kind] += n
        per_set[seed] = {name: hits / total for name, (hits, total) in sums.items()}
        per_set[seed]["otsu_seconds"] = otsu_seconds / count
        per_set[seed]["images"] = count
    sources = {name: hits / total for name, (hits, total) in pooled.items()}
    return per_set, {**sources, **kinds}


STARDIST_WHEEL = "stardist==0.9.2"


def real_annotated() -> tuple[np.ndarray, np.ndarray] | None:
    """A real fluorescence image of nuclei and its instance annotation, or None.

    The DSB 2018 sample inside the stardist wheel, fetched once from PyPI.
    """
    import glob
    import io
    import zipfile
    from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-8k", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.threads)
        return

    import torch

    torch.set_num_threads(args.threads)
    from napari_pyramids.nn import load_model, segment

    model = load_model("nuclei")
    print(f"torch {torch.__version__}, {args.threads} CPU threads; {load()}")
    header = ("image", "segment MP/s", "segment s", "otsu+ws MP/s", "otsu+ws s")
    print(" | ".join(f"{h:>12}" for h in header) + " |  nuclei (model / otsu)")
    for size in (1024, 4096):
        image = big_image(size)
        segment(image[:256, :256], model, device="cpu")  # warm-up
        labels, t_model = timed(segment, image, model, device="cpu")
        base, t_base = timed(otsu_watershed, image)
        mp = size * size / 1e6
        cells = (f"{size}x{size}", mp / t_model, t_model, mp / t_base, t_base)
        print(
            f"{cells[0]:>12} | {cells[1]:12.2f} | {cells[2]:12.2f} | "
            f"{cells[3]:12.2f} | {cells[4]:12.2f} |  {labels.max()} / {base.max()}"
        )
    print(load())
    if not args.skip_8k:
        mem = peak_memory(8192, args.threads)
        print(
            f"8192x8192 uint16 (128 MB input): peak RSS {mem['peak_mb']:.0f} MB, "
            f"{mem['seconds']:.1f} s = {67.1 / mem['seconds']:.2f} MP/s, "
            f"{mem['nuclei']} nuclei; {load()}"
        )
    per_set, sources = held_out_scores(model)
    for seed, score in per_set.items():
        print(
            f"held-out synthetic F1@0.5 ({score['images']} x 256^2, seed {seed}): "
            f"model {score['model']:.3f}, otsu+ws {score['otsu']:.3f} "
            f"({score['otsu_seconds'] * 1e3:.0f} ms/image)"
        )
    print(
        "held-out sets pooled: F1 {model:.3f}; with the true cores as seeds "
        "{true seeds:.3f}, with the true foreground {true foreground:.3f}; "
        "missed nuclei: {merged} merged with a neighbour, {not found} not found, "
        "{misshapen} misshapen".format(**sources)
    )
    real = real_annotated()
    if real is None:
        print("real annotated image unavailable (no PyPI access); skipped")
        return
    from napari_pyramids.nn.instances import match_instances

    image, truth = real
    count = len(np.unique(truth)) - 1
    for name, fn in (("model", segment), ("otsu+ws", otsu_watershed)):
        pred, seconds = timed(fn, image)
        r = match_instances(truth, pred)
        print(
            f"real DSB 2018 image {image.shape} ({count} annotated nuclei): "
            f"{name} F1@0.5 {r['f1']:.3f} (precision {r['precision']:.2f}, "
            f"recall {r['recall']:.2f}, matched IoU {r['mean_matched_iou']:.2f}), "
            f"{seconds:.2f} s"
        )


if __name__ == "__main__":
    main()
