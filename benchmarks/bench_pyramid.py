"""Time Gaussian and Laplacian pyramids against OpenCV and scikit-image, in one run.

    python benchmarks/bench_pyramid.py [--quick]

Cases (issue #2): a 4096x4096 float32 image, all levels; a 256x512x512 float32
volume. Peers: the plain ``cv2.pyrDown`` / ``cv2.pyrUp`` chain and
``skimage.transform.pyramid_gaussian`` / ``pyramid_laplacian``. Ratios are
"ours / peer" medians: below 1 means napari-pyramids is faster.
"""

from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np
from skimage.transform import pyramid_gaussian, pyramid_laplacian

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_time, print_table  # noqa: E402

import napari_pyramids as npp  # noqa: E402


def cv2_gaussian(img, levels):
    out = [img]
    for _ in range(levels - 1):
        out.append(cv2.pyrDown(out[-1]))
    return out


def cv2_laplacian(img, levels):
    g = cv2_gaussian(img, levels)
    bands = [f - cv2.pyrUp(c, dstsize=f.shape[::-1]) for f, c in zip(g[:-1], g[1:])]
    return bands + [g[-1]]


def cv2_gaussian_volume(vol, levels):
    """cv2 has no 3-D pyrDown: y and x per slice, then z with a 5-tap filter."""
    k = cv2.getGaussianKernel(5, -1)  # not the same kernel: only a speed reference
    out = [vol]
    for _ in range(levels - 1):
        v = np.stack([cv2.pyrDown(s) for s in out[-1]])
        flat = v.reshape(v.shape[0], -1)
        z = cv2.sepFilter2D(flat, -1, np.ones(1), k)[::2]
        out.append(z.reshape((-1,) + v.shape[1:]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 run")
    args = parser.parse_args(argv)
    side, vol_shape = (1024, (64, 128, 128)) if args.quick else (4096, (256, 512, 512))
    rep = 1 if args.quick else 7
    rng = np.random.default_rng(0)
    print(f"threads: cv2 {cv2.getNumThreads()}, cores {os.cpu_count()}")

    img = rng.random((side, side), dtype=np.float32)
    levels = npp.pyramid_depth(img.shape, min_size=1)
    checks = npp.gaussian_pyramid(img, levels)
    assert all(
        np.allclose(a, b, atol=1e-5) for a, b in zip(checks, cv2_gaussian(img, levels))
    )
    rows = [
        (
            "napari-pyramids gaussian_pyramid",
            median_time(lambda: npp.gaussian_pyramid(img, levels), rep),
        ),
        ("cv2.pyrDown chain", median_time(lambda: cv2_gaussian(img, levels), rep)),
        (
            "skimage pyramid_gaussian",
            median_time(
                lambda: list(pyramid_gaussian(img, levels - 1, channel_axis=None)), 1, 0
            ),
        ),
    ]
    print_table(
        f"Gaussian, {side}x{side} float32, {levels} levels", rows, "cv2.pyrDown chain"
    )
    print(f"  skimage / ours: {rows[2][1] / rows[0][1]:.0f}x")

    lap = npp.laplacian_pyramid(img, levels)
    err = float(np.abs(npp.reconstruct(lap) - img).max())
    rows = [
        (
            "napari-pyramids laplacian_pyramid",
            median_time(lambda: npp.laplacian_pyramid(img, levels), rep),
        ),
        ("napari-pyramids reconstruct", median_time(lambda: npp.reconstruct(lap), rep)),
        (
            "cv2 pyrDown/pyrUp chain",
            median_time(lambda: cv2_laplacian(img, levels), rep),
        ),
        (
            "skimage pyramid_laplacian",
            median_time(
                lambda: list(pyramid_laplacian(img, levels - 1, channel_axis=None)),
                1,
                0,
            ),
        ),
    ]
    print_table(
        f"Laplacian, {side}x{side} float32, {levels} levels",
        rows,
        "cv2 pyrDown/pyrUp chain",
    )
    print(f"  reconstruct max error: {err:.2e}")

    vol = rng.random(vol_shape, dtype=np.float32)
    vlevels = npp.pyramid_depth(vol.shape, reduce_z=True, min_size=8)
    rows = [
        (
            "napari-pyramids reduce_z=True",
            median_time(
                lambda: npp.gaussian_pyramid(vol, vlevels, reduce_z=True),
                max(1, rep // 2),
            ),
        ),
        (
            "napari-pyramids per-slice (z kept)",
            median_time(lambda: npp.gaussian_pyramid(vol, vlevels), max(1, rep // 2)),
        ),
        (
            "cv2 per-slice + z filter",
            median_time(lambda: cv2_gaussian_volume(vol, vlevels), max(1, rep // 2)),
        ),
        (
            "skimage pyramid_gaussian (3-D)",
            median_time(
                lambda: list(pyramid_gaussian(vol, vlevels - 1, channel_axis=None)),
                1,
                0,
            ),
        ),
    ]
    print_table(
        f"Gaussian volume, {'x'.join(map(str, vol_shape))} float32, {vlevels} levels",
        rows,
        "napari-pyramids reduce_z=True",
    )


if __name__ == "__main__":
    main()
