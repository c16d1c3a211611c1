"""Fine-tuning where the shipped model is weak: before and after, in one run.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_finetune.py [--threads 2] [--seconds 180]

The group: generated images of a kind no training ever had, nuclei stained
at their envelope (a bright ring at the outline, a dim inside, as lamin or
nuclear-pore stains look) instead of the filled DAPI-like nuclei of the
training data. ``npp.finetune`` learns from the labels of two of them for at
most ``--seconds`` seconds; AP@0.5 (pooled) is printed on the other images of
the group before and after, with the time taken and the held-out score the
fine-tuning itself kept aside.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage as ndi


def envelope_image(
    shape: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A generated image of envelope-stained nuclei and its instance labels."""
    from skimage.segmentation import find_boundaries

    from napari_pyramids.nn.synthetic import make_nuclei_image

    _, labels = make_nuclei_image(shape, rng)
    inside = (labels > 0) & ~find_boundaries(labels, mode="inner")
    depth = ndi.distance_transform_edt(inside)  # distance to the own outline
    ring = np.where(labels > 0, np.exp(-((depth / 1.6) ** 2)) + 0.12, 0.0)
    photons = rng.uniform(20, 60)
    signal = ndi.gaussian_filter(ring, rng.uniform(0.8, 1.4)) * photons + 3.0
    image = rng.poisson(signal).astype(np.float32)
    return image.astype(np.uint16), labels


def ap50(model, pairs) -> float:
    from napari_pyramids.nn import segment
    from napari_pyramids.nn.data import nucleus_diameter
    from napari_pyramids.nn.metrics import score_images

    return score_images(
        (lab, segment(img, model, diameter=nucleus_diameter(lab), device="cpu"))
        for img, lab in pairs
    ).ap(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--images", type=int, default=10)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import napari_pyramids as npp

    rng = np.random.default_rng(2026)
    group = [envelope_image((256, 256), rng) for _ in range(args.images)]
    taught, others = group[:2], group[2:]
    base = npp.load_model("nuclei")
    before = ap50(base, others)
    start = time.perf_counter()
    model = npp.finetune(taught, base=base, time_limit=args.seconds)
    seconds = time.perf_counter() - start
    after = ap50(model, others)
    record = model.finetune_record
    print(
        f"envelope-stained nuclei, {len(others)} images not taught: AP@0.5 "
        f"{before:.3f} -> {after:.3f} ({after - before:+.3f}) after fine-tuning on 2 "
        f"images for {seconds:.0f} s ({record.steps} steps, {args.threads} threads); "
        f"held-out strip of the taught images {record.holdout_ap50_before:.3f} -> "
        f"{record.holdout_ap50_after:.3f}"
    )


if __name__ == "__main__":
    main()
