"""Coarse-to-fine template search against exhaustive search, in one run.

Part 1 (speed): a 2048x2048 image with 32x32, 64x64 and 128x128 templates and a
4096x4096 image with a 64x64 template, several random templates per case.
``napari_pyramids.find_template`` against exhaustive
``cv2.matchTemplate(TM_CCOEFF_NORMED)`` and ``skimage.feature.match_template``;
medians of repeated runs, ratios, and whether the coarse-to-fine peak scores as
high as the exhaustive peak ("same peak": found ZNCC >= exhaustive maximum -
1e-4; ties and float noise allowed).

Part 2 (agreement): templates cut at random places from several images that ship
with scikit-image; the searched image gets Gaussian noise and a brightness and
contrast change. Counts how often the coarse-to-fine peak is the exhaustive peak
in that sense, over several seeds.

Part 3 (scale): templates cut from a copy of a scikit-image picture resized by
0.5-2.0, searched in the original with ``scales=(0.5, 2.0)``: how often the match
lies within 2 px of the true corner with a scale within 5 % of the true one,
against the obvious peer, exhaustive ``cv2.matchTemplate`` with the template
resized to each of the 17 scales ``2**(k/8)``, k = -8..8. ``--scale-seeds``
repeats it with further seeds (300 new cases each) and prints the rate per seed
and over all.

The exhaustive maximum leaves out flat image windows (OpenCV scores a window of
zero variance 1 or 0, where ZNCC is undefined), and it is exact: OpenCV's
float32 map picks the positions near its maximum, float64 scores them (OpenCV
can be 1e-4 off on a low-contrast window with a large mean). ``--threads`` sets OpenCV's
thread count for every side (napari-pyramids computes with OpenCV too).

Run: ``python benchmarks/bench_search.py [--cases 1000] [--seeds 3] [--repeats 5]
[--templates 5] [--scale-cases 300] [--scale-seeds 1] [--threads 1]``
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


def median_ms(fn, repeats: int, *args) -> tuple[float, float, object]:
    """Median wall and CPU (this process) milliseconds of ``fn(*args)``, and its
    result. Every side runs on one thread, so CPU time is the work done, which
    other programs on a loaded machine change less than wall time."""
    return interleaved_ms([fn], repeats, *args)[0]


def interleaved_ms(fns, repeats: int, *args) -> list[tuple[float, float, object]]:
    """:func:`median_ms` of each of ``fns``, run in turn within each repeat, so
    that a change of the machine's load meets every side alike."""
    walls = [[] for _ in fns]
    cpus = [[] for _ in fns]
    results = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.process_time()
            results[i] = fn(*args)
            walls[i].append(time.perf_counter() - t0)
            cpus[i].append(time.process_time() - c0)
    return [
        (1e3 * float(np.median(w)), 1e3 * float(np.median(c)), r)
        for w, c, r in zip(walls, cpus, results)
    ]


def argmax(scores: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(np.argmax(scores), scores.shape))


#: "same peak": the found ZNCC is at least the exhaustive maximum minus this
SAME_PEAK = 1e-4


def defined(scores: np.ndarray, image: np.ndarray, shape) -> np.ndarray:
    """``scores`` (an OpenCV ZNCC map) with flat windows set to -inf: their ZNCC
    is undefined, and OpenCV reports 1 or 0 there. Window variances come from
    float64 integral images; flat = standard deviation below 1e-5 of the
    image's RMS value (the tolerance napari-pyramids uses)."""
    th, tw = shape
    sums, squares = cv2.integral2(image.astype(np.float64))
    n = th * tw

    def window(ii):
        return ii[th:, tw:] - ii[:-th, tw:] - ii[th:, :-tw] + ii[:-th, :-tw]

    s1, s2 = window(sums), window(squares)
    var = np.maximum(s2 - s1 * s1 / n, 0) / n
    rms2 = float(np.mean(image.astype(np.float64) ** 2))
    out = scores.copy()
    out[var <= 1e-10 * rms2] = -np.inf
    return out


#: OpenCV's float32 ZNCC can be this far from the exact value (1.3e-4 seen, on
#: a low-contrast window with a large mean); every position it scores within
#: this of its maximum is scored again in float64
CV_ERROR = 1e-3


def exact_zncc(image: np.ndarray, template: np.ndarray, position) -> float:
    """ZNCC of ``template`` with its corner at ``position``, in float64."""
    y, x = position
    th, tw = template.shape
    a = image[y : y + th, x : x + tw].astype(np.float64)
    b = template.astype(np.float64)
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def exhaustive_best(scores: np.ndarray, image: np.ndarray, template) -> tuple:
    """``(position, ZNCC)`` of the exhaustive maximum: OpenCV's map (flat
    windows left out, :func:`defined`) picks the positions within CV_ERROR of
    its maximum (at most 100, best first), float64 scores them exactly."""
    scores = defined(scores, image, template.shape)
    top = float(scores.max())
    near = np.flatnonzero(scores >= top - CV_ERROR)
    near = near[np.argsort(-scores.flat[near], kind="stable")[:100]]
    best = (None, -np.inf)
    for i in near:
        position = tuple(int(v) for v in np.unravel_index(i, scores.shape))
        value = exact_zncc(image, template, position)
        if value > best[1]:
            best = (position, value)
    return best


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
        f"median of {repeats} runs, find_template's and cv2's in turn (skimage: "
        f"{max(1, repeats // 3)}), in ms; "
        "ratio = peer / find_template, of wall and (cpu) of CPU time; 'start' is "
        "the octave searched exhaustively (lower when look-alikes crowd the "
        "coarsest one)"
    )
    head = (
        f"{'image':>10} {'template':>9} {'find_template':>14} {'cv2 exh.':>9} "
        f"{'x cv2':>6} {'(cpu)':>6} {'skimage exh.':>13} {'x skimage':>9} "
        f"{'same peak':>9} {'start':>5}"
    )
    print(head)
    summary = []
    misses = 0
    for size, tsize in ((2048, 32), (2048, 64), (2048, 128), (4096, 64)):
        image = big_scene(size, rng)
        ratios, cpu_ratios = [], []
        for _ in range(templates):
            _, template = textured_template(image, tsize, rng)
            args = (image, template)
            search = functools.partial(find_template, **options)
            exhaustive = functools.partial(
                cv2.matchTemplate, method=cv2.TM_CCOEFF_NORMED
            )
            (t_ours, c_ours, ours), (t_cv, c_cv, cv) = interleaved_ms(
                [search, exhaustive], repeats, *args
            )
            t_sk, _, _ = median_ms(match_template, max(1, repeats // 3), *args)
            _, best = exhaustive_best(cv, image, template)
            same = ours[0].score >= best - SAME_PEAK
            misses += not same
            ratios.append(t_cv / t_ours)
            cpu_ratios.append(c_cv / c_ours)
            print(
                f"{size:>5}x{size:<4} {tsize:>4}x{tsize:<4} {t_ours:>14.1f} "
                f"{t_cv:>9.1f} {t_cv / t_ours:>6.1f} {c_cv / c_ours:>6.1f} "
                f"{t_sk:>13.1f} {t_sk / t_ours:>9.1f} {str(same):>9} "
                f"{ours[0].trace[0].octave:>5}"
            )
        summary.append((size, tsize, ratios, cpu_ratios))
    print(f"\nrows where find_template's peak scores below exhaustive's: {misses}")
    print("x cv2 per case: median (min-max) over the templates, wall; CPU")
    for size, tsize, ratios, cpu in summary:
        print(
            f"  {size}x{size} / {tsize}x{tsize}: {np.median(ratios):.1f}x "
            f"({min(ratios):.1f}-{max(ratios):.1f}); CPU {np.median(cpu):.1f}x "
            f"({min(cpu):.1f}-{max(cpu):.1f})"
        )


def agreement(cases: int, rng: np.random.Generator, **options) -> dict:
    """Counts over ``cases`` noisy study cases drawn from ``rng``."""
    images = {name: grey(name) for name in STUDY_IMAGES}
    out = dict(cases=cases, same=0, position=0, planted=0, skipped=0, misses=[])
    out.update(ours=[], cv=[], deficit=[])
    done = 0
    while done < cases:
        name = STUDY_IMAGES[done % len(STUDY_IMAGES)]
        clean = images[name]
        tsize = int(rng.choice([24, 32, 48, 64]))
        y = int(rng.integers(0, clean.shape[0] - tsize))
        x = int(rng.integers(0, clean.shape[1] - tsize))
        template = clean[y : y + tsize, x : x + tsize]
        if template.std() < 4:  # no texture: ZNCC has no meaningful peak
            out["skipped"] += 1
            continue
        contrast = rng.uniform(0.6, 1.4)
        brightness = rng.uniform(-40, 40)
        noise = rng.uniform(2, 12)
        image = contrast * clean + brightness + rng.normal(0, noise, clean.shape)
        image = image.astype(np.float32)
        t0 = time.perf_counter()
        found = find_template(image, template, **options)[0]
        t1 = time.perf_counter()
        scores = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
        t2 = time.perf_counter()
        out["ours"].append(t1 - t0)
        out["cv"].append(t2 - t1)
        exhaustive, best = exhaustive_best(scores, image, template)
        deficit = best - found.score
        out["deficit"].append(deficit)
        same = deficit <= SAME_PEAK
        out["same"] += same
        out["position"] += found.position == exhaustive
        out["planted"] += exhaustive == (y, x)
        if not same:
            out["misses"].append((name, tsize, (y, x), found.position, exhaustive))
        done += 1
    return out


def agreement_study(cases: int, seeds: list[int], **options) -> None:
    per_seed = [
        cases // len(seeds) + (i < cases % len(seeds)) for i in range(len(seeds))
    ]
    results = [
        agreement(n, np.random.default_rng(seed), **options)
        for n, seed in zip(per_seed, seeds)
    ]
    print(
        f"\nAgreement: {cases} cases over seeds {seeds} from {len(STUDY_IMAGES)} "
        "scikit-image pictures (templates 24-64 px at random places; image "
        "contrast x0.6-1.4, brightness +-40, Gaussian noise sigma 2-12 grey levels)"
    )
    for seed, r in zip(seeds, results):
        print(
            f"  seed {seed}: same peak (ZNCC >= exhaustive max - {SAME_PEAK:g}) "
            f"{r['same']}/{r['cases']}; same position {r['position']}/{r['cases']}; "
            f"exhaustive peak == planted {r['planted']}/{r['cases']}; "
            f"skipped textureless (std < 4) {r['skipped']}"
        )
    same = sum(r["same"] for r in results)
    ours = np.concatenate([r["ours"] for r in results])
    cv = np.concatenate([r["cv"] for r in results])
    deficit = np.concatenate([r["deficit"] for r in results])
    print(f"  total same peak: {same}/{cases} = {100 * same / cases:.1f}%")
    print(f"  largest deficit (exhaustive max - found ZNCC): {deficit.max():.2e}")
    print(
        f"  median time per case: find_template {1e3 * np.median(ours):.2f} ms, "
        f"cv2 exhaustive {1e3 * np.median(cv):.2f} ms"
    )
    for r in results:
        for miss in r["misses"]:
            print("  miss:", miss)


#: the peer's scales: 2**(k/8), k = -8..8
PEER_SCALES = [2 ** (k / 8) for k in range(-8, 9)]


def resized_case(images, rng):
    """A picture, a copy resized by ``z`` in [0.5, 2] (log-uniform) and a
    textured template cut from the copy; the object in the picture is ``1/z``
    times the template's size, its corner where the template's first pixel
    lands (cv2.resize maps copy pixel ``u`` to ``(u + 0.5) / z - 0.5``)."""
    name = STUDY_IMAGES[int(rng.integers(len(STUDY_IMAGES)))]
    clean = images[name]
    z = float(2 ** rng.uniform(-1, 1))
    method = cv2.INTER_AREA if z < 1 else cv2.INTER_CUBIC
    copy = cv2.resize(clean, None, fx=z, fy=z, interpolation=method)
    for _ in range(100):
        size = int(rng.choice([32, 48, 64]))
        if size / z > 0.8 * min(clean.shape) or size > 0.8 * min(copy.shape):
            continue
        y, x = (int(rng.integers(0, n - size)) for n in copy.shape)
        template = copy[y : y + size, x : x + size].copy()
        corner = ((y + 0.5) / z - 0.5, (x + 0.5) / z - 0.5)
        if template.std() >= 10 and all(
            c + size / z <= n for c, n in zip(corner, clean.shape)
        ):
            return name, clean, template, corner, 1 / z
    return resized_case(images, rng)


def peer_scaled(image, template):
    """Exhaustive cv2.matchTemplate with the template resized to each of
    PEER_SCALES: (corner, scale, score) of the best, and the wall and CPU
    seconds the resizing and matching took (the flat-window masking is not
    timed)."""
    best = (None, None, -np.inf)
    seconds = cpu = 0.0
    for s in PEER_SCALES:
        size = tuple(max(2, round(n * s)) for n in template.shape[::-1])
        if size[0] > image.shape[1] or size[1] > image.shape[0]:
            continue
        method = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
        t0, c0 = time.perf_counter(), time.process_time()
        resized = cv2.resize(template, size, interpolation=method)
        scores = cv2.matchTemplate(image, resized, cv2.TM_CCOEFF_NORMED)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        scores = defined(scores, image, size[::-1])
        if scores.max() > best[2]:
            best = (argmax(scores), size[0] / template.shape[1], float(scores.max()))
    return best, seconds, cpu


def right_place(found, found_scale, corner, scale) -> bool:
    """Corner within 2 px and scale within 5 % of the truth."""
    near = max(abs(a - b) for a, b in zip(found, corner)) <= 2
    return near and abs(found_scale / scale - 1) <= 0.05


def scale_cases(cases: int, rng: np.random.Generator, images, **options) -> dict:
    """One seed's scale cases: how many ours and the peer got right, times, misses."""
    r = {
        "ours": 0,
        "peer": 0,
        "t_ours": [],
        "t_peer": [],
        "c_ours": [],
        "c_peer": [],
        "misses": [],
    }
    for _ in range(cases):
        name, image, template, corner, scale = resized_case(images, rng)
        t0, c0 = time.perf_counter(), time.process_time()
        (match,) = find_template(image, template, scales=(0.5, 2.0), **options)
        t1, c1 = time.perf_counter(), time.process_time()
        (p_corner, p_scale, _), peer_seconds, peer_cpu = peer_scaled(image, template)
        r["t_ours"].append(t1 - t0)
        r["t_peer"].append(peer_seconds)
        r["c_ours"].append(c1 - c0)
        r["c_peer"].append(peer_cpu)
        ok = right_place(match.position, match.scale, corner, scale)
        r["ours"] += ok
        r["peer"] += right_place(p_corner, p_scale, corner, scale)
        if not ok:
            r["misses"].append(
                (
                    name,
                    template.shape[0],
                    tuple(round(c, 1) for c in corner),
                    round(scale, 3),
                    match.position,
                    round(match.scale, 3),
                )
            )
    return r


def scale_study(cases: int, seeds: list[int], **options) -> None:
    images = {name: grey(name) for name in STUDY_IMAGES}
    results = [
        scale_cases(cases, np.random.default_rng(seed), images, **options)
        for seed in seeds
    ]
    print(
        f"\nScale: {cases} templates per seed (32-64 px, std >= 10) cut from "
        "scikit-image pictures resized by 0.5-2 (log-uniform), searched in the "
        "original with scales=(0.5, 2.0); right = corner within 2 px and scale "
        "within 5 %"
    )
    for seed, r in zip(seeds, results):
        print(
            f"  seed {seed}: find_template right {r['ours']}/{cases} = "
            f"{100 * r['ours'] / cases:.1f}%; peer (cv2.matchTemplate at 17 scales "
            f"2**(k/8)) right {r['peer']}/{cases} = {100 * r['peer'] / cases:.1f}%"
        )
    if len(seeds) > 1:
        total = cases * len(seeds)
        ours, peer = (sum(r[key] for r in results) for key in ("ours", "peer"))
        print(
            f"  all seeds: find_template right {ours}/{total} = "
            f"{100 * ours / total:.1f}%; peer {peer}/{total} = "
            f"{100 * peer / total:.1f}%"
        )
    t_ours, t_peer, c_ours, c_peer = (
        np.concatenate([r[key] for r in results])
        for key in ("t_ours", "t_peer", "c_ours", "c_peer")
    )
    print(
        f"  median time: find_template {1e3 * np.median(t_ours):.1f} ms, peer "
        f"{1e3 * np.median(t_peer):.1f} ms: "
        f"{np.median(t_peer) / np.median(t_ours):.1f}x faster; CPU "
        f"{1e3 * np.median(c_ours):.1f} ms vs {1e3 * np.median(c_peer):.1f} ms: "
        f"{np.median(c_peer) / np.median(c_ours):.1f}x"
    )
    for seed, r in zip(seeds, results):
        for miss in r["misses"]:
            print(f"  miss (seed {seed}):", miss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="agreement study")
    parser.add_argument("--seeds", type=int, default=3, help="agreement study")
    parser.add_argument("--scale-cases", type=int, default=300, help="per seed")
    parser.add_argument("--scale-seeds", type=int, default=1, help="scale study")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--templates", type=int, default=5, help="per speed case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="OpenCV, all sides")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--min-size", type=int, default=None, help="find_template")
    parser.add_argument("--candidates", type=int, default=None, help="find_template")
    parser.add_argument("--refine-radius", type=int, default=None, help="find_template")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} thread(s) for every side")
    options = {  # find_template settings for all parts
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
    if args.cases:  # own generators: the same cases with or without --skip-speed
        seeds = [args.seed + i for i in range(args.seeds)]
        agreement_study(args.cases, seeds, **options)
    if args.scale_cases:
        seeds = [args.seed + i for i in range(args.scale_seeds)]
        scale_study(args.scale_cases, seeds, **options)


if __name__ == "__main__":
    main()
