"""Benchmark napari_pyramids.nn.segment against a classical Otsu + watershed baseline.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_segment.py [--threads 2] [--skip-8k]

Prints one table: megapixels per second of ``segment`` (model "nuclei", CPU)
and of the baseline at 1024x1024 and 4096x4096, the peak resident memory of
``segment`` on an 8192x8192 uint16 image (measured in a fresh subprocess, so
nothing else is counted; the input image itself is included), and F1 at IoU 0.5
of both methods on held-out synthetic images. If scikit-image's
``human_mitosis`` sample is available (it needs a one-time download), both are
also run on it and the instance counts are printed.
"""

from __future__ import annotations

import argparse
import json
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
    peaks = peak_local_max(distance, min_distance=min_distance, labels=ndi.label(mask)[0])
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


def peak_memory_child(size: int, threads: int) -> None:
    import resource

    import torch

    torch.set_num_threads(threads)
    from napari_pyramids.nn import segment

    image = big_image(size)
    labels, seconds = timed(segment, image, device="cpu")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak_mb, "seconds": seconds, "nuclei": int(labels.max())}))


def f1_table(model, count: int = 10) -> tuple[float, float]:
    from napari_pyramids.nn import segment
    from napari_pyramids.nn.instances import match_instances
    from napari_pyramids.nn.synthetic import make_dataset

    sums = {"model": [0, 0], "otsu": [0, 0]}
    for image, labels in make_dataset(count, (256, 256), seed=4242):
        for name, pred in (("model", segment(image, model)), ("otsu", otsu_watershed(image))):
            r = match_instances(labels, pred)
            sums[name][0] += 2 * r["tp"]
            sums[name][1] += 2 * r["tp"] + r["fp"] + r["fn"]
    return sums["model"][0] / sums["model"][1], sums["otsu"][0] / sums["otsu"][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-8k", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        peak_memory_child(args.memory_child, args.threads)
        return

    import torch

    torch.set_num_threads(args.threads)
    from napari_pyramids.nn import load_model, segment

    model = load_model("nuclei")
    rows = []
    for size in (1024, 4096):
        image = big_image(size)
        segment(image[:256, :256], model)  # warm-up
        labels, t_model = timed(segment, image, model, device="cpu")
        base, t_base = timed(otsu_watershed, image)
        mp = size * size / 1e6
        rows.append((f"{size}x{size}", mp / t_model, t_model, mp / t_base, t_base, labels.max(), base.max()))
    print(f"\nCPU threads: {args.threads}")
    print(f"{'image':>10} | {'segment MP/s':>12} | {'segment s':>9} | {'otsu+ws MP/s':>12} | {'otsu+ws s':>9} | {'n model':>7} | {'n otsu':>7}")
    for r in rows:
        print(f"{r[0]:>10} | {r[1]:12.2f} | {r[2]:9.2f} | {r[3]:12.2f} | {r[4]:9.2f} | {r[5]:7d} | {r[6]:7d}")
    if not args.skip_8k:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", "8192", "--threads", str(args.threads)],
            capture_output=True, text=True, check=True,
        )
        mem = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"8192x8192 uint16: peak RSS {mem['peak_mb']:.0f} MB (input 128 MB included), "
              f"{mem['seconds']:.1f} s, {67.1 / mem['seconds']:.2f} MP/s, {mem['nuclei']} nuclei")
    f1_model, f1_otsu = f1_table(model)
    print(f"held-out synthetic F1@0.5 (10 x 256^2, seed 4242): model {f1_model:.3f}, otsu+ws {f1_otsu:.3f}")
    try:
        from skimage.data import human_mitosis

        mitosis = human_mitosis()
    except Exception as exc:  # noqa: BLE001 - any fetch failure means "not available"
        print(f"human_mitosis unavailable here ({type(exc).__name__}); skipped")
        return
    labels, t_model = timed(segment, mitosis, model)
    base, t_base = timed(otsu_watershed, mitosis)
    print(f"human_mitosis {mitosis.shape}: model {labels.max()} nuclei in {t_model:.2f} s, "
          f"otsu+ws {base.max()} nuclei in {t_base:.2f} s, "
          f"agreement F1@0.5 {match_f1(labels, base):.3f}")


def match_f1(a: np.ndarray, b: np.ndarray) -> float:
    from napari_pyramids.nn.instances import match_instances

    return match_instances(a, b)["f1"]


if __name__ == "__main__":
    main()
