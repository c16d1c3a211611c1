"""Time Laplacian-pyramid blending against its peers, in one run.

Contenders, all blending two RGB float32 images under a soft mask with 6 pyramid
levels (level 0 included):

* ``napari-pyramids``: :func:`napari_pyramids.blend`.
* ``cv2 chain``: the textbook algorithm written with ``cv2.pyrDown`` /
  ``cv2.pyrUp`` and numpy arithmetic (Gaussian pyramids of A, B and the mask,
  two Laplacian pyramids, level-wise mix, collapse). The reference for accuracy.
* ``skimage``: the same with ``skimage.transform.pyramid_laplacian`` bands,
  the coarsest ``pyramid_gaussian`` level as residual and ``pyramid_expand``
  to collapse. skimage's pyramids use another kernel and area alignment, so its
  PSNR against the cv2 chain is low by design; only its time compares.
* ``cv2 MultiBandBlender``: OpenCV's stitching blender (``num_bands=5``), fed
  its native int16 images (the image scaled by 255 and converted before
  timing) and 8-bit masks; its result is converted back for the PSNR.

Prints, per size, the median wall time of each, its ratio to napari-pyramids
and its PSNR against the cv2 chain. Run::

    python benchmarks/bench_blend.py                  # 2048 and 4096, the default
    python benchmarks/bench_blend.py --sizes 512 --repeat 3 --slow-repeat 1
"""

from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np
from skimage.transform import pyramid_expand, pyramid_gaussian, pyramid_laplacian

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_time  # noqa: E402

import napari_pyramids as npp  # noqa: E402

LEVELS = 6


def make_inputs(size: int, seed: int = 0):
    """Two smooth-plus-noise RGB images and a soft disc mask, all float32."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    ramp_a = np.stack([yy, xx, 1 - yy], axis=-1)
    ramp_b = np.stack([1 - xx, yy * xx, xx], axis=-1)
    img_a = 0.7 * ramp_a + 0.3 * rng.random((size, size, 3), dtype=np.float32)
    img_b = 0.7 * ramp_b + 0.3 * rng.random((size, size, 3), dtype=np.float32)
    r = np.hypot(yy - 0.5, xx - 0.5)
    mask = np.clip((0.3 - r) * size / 8, 0, 1).astype(np.float32)
    return img_a, img_b, mask


# ------------------------------------------------------------------ contenders
def ours(img_a, img_b, mask):
    return npp.blend(img_a, img_b, mask, LEVELS, channel_axis=-1)


def cv2_chain(img_a, img_b, mask):
    ga, gb, gm = [img_a], [img_b], [mask]
    for _ in range(LEVELS - 1):
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = None
    for k in range(LEVELS - 1, -1, -1):
        m = gm[k][..., None]
        if k == LEVELS - 1:
            out = m * ga[k] + (1 - m) * gb[k]
            continue
        size = ga[k].shape[1::-1]
        la = ga[k] - cv2.pyrUp(ga[k + 1], dstsize=size)
        lb = gb[k] - cv2.pyrUp(gb[k + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + m * la + (1 - m) * lb
    return out


def skimage_pyramids(img_a, img_b, mask):
    top = LEVELS - 1
    la = list(pyramid_laplacian(img_a, max_layer=top, channel_axis=-1))
    lb = list(pyramid_laplacian(img_b, max_layer=top, channel_axis=-1))
    ra = list(pyramid_gaussian(img_a, max_layer=top, channel_axis=-1))[-1]
    rb = list(pyramid_gaussian(img_b, max_layer=top, channel_axis=-1))[-1]
    gm = [m[..., None] for m in pyramid_gaussian(mask, max_layer=top)]
    out = gm[top] * ra + (1 - gm[top]) * rb
    for k in range(top - 1, -1, -1):
        out = pyramid_expand(out, upscale=2, channel_axis=-1)[
            : la[k].shape[0], : la[k].shape[1]
        ]
        out += gm[k] * la[k] + (1 - gm[k]) * lb[k]
    return out


class MultiBand:
    """cv2.detail_MultiBandBlender with its inputs prepared outside the timing."""

    def __init__(self, img_a, img_b, mask):
        self.a = np.rint(img_a * 255).astype(np.int16)
        self.b = np.rint(img_b * 255).astype(np.int16)
        self.ma = np.rint(mask * 255).astype(np.uint8)
        self.mb = 255 - self.ma

    def __call__(self, *_):
        h, w = self.a.shape[:2]
        blender = cv2.detail_MultiBandBlender(0, LEVELS - 1)
        blender.prepare((0, 0, w, h))
        blender.feed(self.a, self.ma, (0, 0))
        blender.feed(self.b, self.mb, (0, 0))
        out, _ = blender.blend(None, None)
        return out.astype(np.float32) / 255


# ------------------------------------------------------------------- timing
def time_and_result(func, args, repeat: int) -> tuple[float, np.ndarray]:
    """The result of one warm-up run, then the median time of ``repeat`` runs."""
    result = func(*args)
    return median_time(lambda: func(*args), repeat, warmup=0), result


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((x.astype(np.float64) - ref) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--repeat", type=int, default=7, help="runs of fast methods")
    parser.add_argument("--slow-repeat", type=int, default=2, help="runs of skimage")
    args = parser.parse_args()
    print(
        f"RGB float32, {LEVELS} levels; cv2 {cv2.__version__} with "
        f"{cv2.getNumThreads()} threads; medians of {args.repeat} runs "
        f"({args.slow_repeat} for skimage) after one warm-up run"
    )
    header = f"{'size':>9}  {'method':<22}{'median ms':>10}{'x ours':>9}{'PSNR dB':>9}"
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        inputs = make_inputs(size)
        contenders = [
            ("napari-pyramids", ours, args.repeat),
            ("cv2 chain", cv2_chain, args.repeat),
            ("cv2 MultiBandBlender", MultiBand(*inputs), args.repeat),
            ("skimage", skimage_pyramids, args.slow_repeat),
        ]
        timings, results = {}, {}
        for name, func, repeat in contenders:
            timings[name], results[name] = time_and_result(func, inputs, repeat)
        for name in timings:
            ratio = timings[name] / timings["napari-pyramids"]
            quality = psnr(results[name], results["cv2 chain"])
            print(
                f"{size:>4}x{size:<4}  {name:<22}{timings[name] * 1e3:>10.1f}"
                f"{ratio:>9.2f}{quality:>9.1f}"
            )
        print(
            f"{'':>11}napari-pyramids / cv2 chain = "
            f"{timings['napari-pyramids'] / timings['cv2 chain']:.2f}; "
            f"skimage / napari-pyramids = "
            f"{timings['skimage'] / timings['napari-pyramids']:.1f}"
        )


if __name__ == "__main__":
    main()
