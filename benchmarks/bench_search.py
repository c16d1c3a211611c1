"""Coarse-to-fine template search against exhaustive search, in one run.

Part 1 (speed): a 2048x2048 image with 32x32, 64x64 and 128x128 templates and a
4096x4096 image with a 64x64 template, several random templates per case.
``napari_pyramids.find_template`` against exhaustive
``cv2.matchTemplate(TM_CCOEFF_NORMED)`` and ``skimage.feature.match_template``;
medians of repeated runs, ratios, and whether the coarse-to-fine peak is the
exhaustive peak.

Part 2 (agreement): templates cut at random places from several images that ship
with scikit-image; the searched image gets Gaussian noise and a brightness and
contrast change. Counts how often the coarse-to-fine peak is the exhaustive
ZNCC peak (within 1 pixel).

Run: ``python benchmarks/bench_search.py [--cases 300] [--repeats 5] [--templates 5]``
"""

from __future__ import annotations

import argparse
import functools
import time

import cv2
import numpy as np
from skimage import color, data
from skimage.feature import match_template

from napari_pyramids import find_template

STUDY_IMAGES = (
    "astronaut",
    "camera",
    "coffee",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "rocket",
    "chelsea",
    "text",
)


def grey(name: str) -> np.ndarray:
    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img) * 255
    return img.astype(np.float32)


def median_ms(fn, repeats: int, *args) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)), result


def argmax(scores: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(np.argmax(scores), scores.shape))


def big_scene(size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size grey mosaic of 512 px tiles, each a random square crop
    (340-512 px, resized to 512) of a random large scikit-image picture, so the
    scene keeps natural texture and no two tiles are the same."""
    sources = [
        grey(n)
        for n in (
            "astronaut",
            "camera",
            "moon",
            "brick",
            "grass",
            "gravel",
            "hubble_deep_field",
        )
    ]
    n = size // 512
    rows = []
    for _ in range(n):
        row = []
        for _ in range(n):
            src = sources[rng.integers(len(sources))]
            side = int(rng.integers(340, 513))
            y, x = (int(rng.integers(0, d - side + 1)) for d in src.shape)
            row.append(cv2.resize(src[y : y + side, x : x + side], (512, 512)))
        rows.append(row)
    return np.block(rows)


def textured_template(image, tsize, rng):
    """A template at a random place with some texture (std >= 20 grey levels),
    as a person would pick: a flat patch has no well-defined best match."""
    while True:
        y, x = (int(rng.integers(0, d - tsize)) for d in image.shape)
        template = image[y : y + tsize, x : x + tsize].copy()
        if template.std() >= 20:
            return (y, x), template


def speed(repeats: int, templates: int, rng: np.random.Generator, **options) -> None:
    print(
        f"Speed: {templates} random textured templates per case; each time is the "
        f"median of {repeats} runs (skimage: {max(1, repeats // 3)}), in ms; "
        "ratio = peer / find_template; 'start' is the octave searched exhaustively "
        "(lower when look-alikes crowd the coarsest one)"
    )
    head = (
        f"{'image':>10} {'template':>9} {'find_template':>14} {'cv2 exh.':>9} "
        f"{'x cv2':>6} {'skimage exh.':>13} {'x skimage':>9} {'same peak':>9} "
        f"{'start':>5}"
    )
    print(head)
    summary = []
    for size, tsize in ((2048, 32), (2048, 64), (2048, 128), (4096, 64)):
        image = big_scene(size, rng)
        ratios = []
        for _ in range(templates):
            _, template = textured_template(image, tsize, rng)
            args = (image, template)
            search = functools.partial(find_template, **options)
            t_ours, ours = median_ms(search, repeats, *args)
            t_cv, cv = median_ms(
                cv2.matchTemplate, repeats, *args, cv2.TM_CCOEFF_NORMED
            )
            t_sk, _ = median_ms(match_template, max(1, repeats // 3), *args)
            same = ours[0].position == argmax(cv)
            ratios.append(t_cv / t_ours)
            print(
                f"{size:>5}x{size:<4} {tsize:>4}x{tsize:<4} {t_ours:>14.1f} "
                f"{t_cv:>9.1f} {t_cv / t_ours:>6.1f} {t_sk:>13.1f} "
                f"{t_sk / t_ours:>9.1f} {str(same):>9} {ours[0].trace[0].octave:>5}"
            )
        summary.append((size, tsize, ratios))
    print("\nx cv2 per case: median (min-max) over the templates")
    for size, tsize, ratios in summary:
        print(
            f"  {size}x{size} / {tsize}x{tsize}: {np.median(ratios):.1f}x "
            f"({min(ratios):.1f}-{max(ratios):.1f})"
        )


def agreement(cases: int, rng: np.random.Generator, **options) -> None:
    images = {name: grey(name) for name in STUDY_IMAGES}
    agree = planted = skipped = 0
    misses = []
    times_ours, times_cv = [], []
    done = 0
    while done < cases:
        name = STUDY_IMAGES[done % len(STUDY_IMAGES)]
        clean = images[name]
        tsize = int(rng.choice([24, 32, 48, 64]))
        y = int(rng.integers(0, clean.shape[0] - tsize))
        x = int(rng.integers(0, clean.shape[1] - tsize))
        template = clean[y : y + tsize, x : x + tsize]
        if template.std() < 4:  # no texture: ZNCC has no meaningful peak
            skipped += 1
            continue
        contrast = rng.uniform(0.6, 1.4)
        brightness = rng.uniform(-40, 40)
        noise = rng.uniform(2, 12)
        image = contrast * clean + brightness + rng.normal(0, noise, clean.shape)
        image = image.astype(np.float32)
        t0 = time.perf_counter()
        found = find_template(image, template, **options)[0].position
        t1 = time.perf_counter()
        exhaustive = argmax(cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED))
        t2 = time.perf_counter()
        times_ours.append(t1 - t0)
        times_cv.append(t2 - t1)
        ok = max(abs(a - b) for a, b in zip(found, exhaustive)) <= 1
        agree += ok
        planted += exhaustive == (y, x)
        if not ok:
            misses.append((name, tsize, (y, x), found, exhaustive))
        done += 1
    print(
        f"\nAgreement: {cases} cases from {len(STUDY_IMAGES)} scikit-image pictures "
        "(templates 24-64 px at random places; image contrast x0.6-1.4, "
        "brightness +-40, Gaussian noise sigma 2-12 grey levels)"
    )
    print(
        f"  coarse-to-fine peak == exhaustive peak (<= 1 px): {agree}/{cases} "
        f"= {100 * agree / cases:.1f}%"
    )
    print(f"  exhaustive peak == planted position: {planted}/{cases}")
    print(f"  skipped textureless templates (std < 4 grey levels): {skipped}")
    print(
        f"  median time per case: find_template {1e3 * np.median(times_ours):.2f} ms, "
        f"cv2 exhaustive {1e3 * np.median(times_cv):.2f} ms"
    )
    for miss in misses:
        print("  miss:", miss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--templates", type=int, default=5, help="per speed case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--min-size", type=int, default=None, help="find_template")
    parser.add_argument("--candidates", type=int, default=None, help="find_template")
    parser.add_argument("--refine-radius", type=int, default=None, help="find_template")
    args = parser.parse_args()
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads")
    options = {  # find_template settings for both parts
        key: value
        for key, value in (
            ("min_size", args.min_size),
            ("candidates", args.candidates),
            ("refine_radius", args.refine_radius),
        )
        if value is not None
    }
    if not args.skip_speed:
        speed(args.repeats, args.templates, np.random.default_rng(args.seed), **options)
    if args.cases:  # its own generator: the same cases with or without --skip-speed
        agreement(args.cases, np.random.default_rng(args.seed), **options)


if __name__ == "__main__":
    main()
