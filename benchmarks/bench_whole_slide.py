"""Whole-slide segmentation: a SIZE x SIZE uint16 zarr of nuclei into zarr labels.

Makes the input on disk block by block (never whole): a few 2048 x 2048
generated nuclei scenes (``nn/synthetic.py``, seeds whose nuclei are about
20 px across), each block one of them in one of its 8 flips and rotations,
scaled to a common uint16 range. Then, in a subprocess of its own (so its peak
resident memory, interpreter and imports included, is the segmentation's):

* ``napari_pyramids.segment_to_zarr`` on the whole image (diameter given,
  default tiles and blocks), reporting wall time, MP/s and peak RSS
  (targets: >= 2 MP/s on 2 cores, < 1.5 GB), and
* the equality check: a ``CHECK x CHECK`` corner segmented in memory
  (``segment``) and block by block with small blocks, so block borders cut
  many nuclei; the labels must be equal. The in-memory run and one from a
  zarr copy with the default blocks are timed against each other (the cost
  of going block by block, under the same load).

Meant to be run once (at 32768, about ten minutes on 2 cores), not in CI.
The load average at the start and the CPU time are printed: other work on
the machine slows the wall-clock rate.

Usage::

    python benchmarks/bench_whole_slide.py [--size 32768] [--check 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = 2048
POOL = 4  # distinct generated scenes (x 8 flips/rotations)


def make_input(path: Path, size: int) -> None:
    """The input zarr, block by block from a small pool of generated scenes."""
    import numpy as np
    import zarr

    from napari_pyramids.nn.data import nucleus_diameter
    from napari_pyramids.nn.synthetic import make_nuclei_image

    pool, seed = [], 0
    while len(pool) < POOL:
        # one nucleus size per slide: a seed's sizes show on a small scene
        seed += 1
        if not 17 <= nucleus_diameter(make_nuclei_image((384, 384), seed)[1]) <= 23:
            continue
        image, _ = make_nuclei_image((CHUNK, CHUNK), seed)
        lo, hi = np.percentile(image, (1, 99.8))
        scaled = (image.astype(np.float32) - lo) / (hi - lo) * 3000 + 200
        pool.append(np.clip(scaled, 0, 65535).astype(np.uint16))
    out = zarr.create_array(
        store=str(path), shape=(size, size), chunks=(CHUNK, CHUNK), dtype="uint16"
    )
    rng = np.random.default_rng(0)
    for y0 in range(0, size, CHUNK):
        for x0 in range(0, size, CHUNK):
            block = pool[rng.integers(POOL)]
            block = np.rot90(block, rng.integers(4))
            block = block[:, ::-1] if rng.integers(2) else block
            h, w = min(CHUNK, size - y0), min(CHUNK, size - x0)
            out[y0 : y0 + h, x0 : x0 + w] = block[:h, :w]


def run_segment(source: Path, out: Path, diameter: float) -> dict:
    """Body of the timing subprocess: segment the whole input into zarr labels."""
    import torch
    import zarr

    from napari_pyramids import segment_to_zarr

    image = zarr.open_array(str(source), mode="r")
    start, cpu = time.perf_counter(), _cpu_seconds()  # imports done: time the run
    segment_to_zarr(image, out, diameter=diameter, device="cpu")
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    attrs = zarr.open_group(str(out), mode="r").attrs["napari_pyramids"]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "nuclei": attrs["nuclei"],
        "torch_threads": torch.get_num_threads(),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_check(source: Path, out: Path, diameter: float, side: int) -> dict:
    """Body of the check subprocess: in memory vs block by block on a corner."""
    import numpy as np
    import zarr

    from napari_pyramids import read_ome_zarr, segment, segment_to_zarr

    image = np.asarray(zarr.open_array(str(source), mode="r")[:side, :side])
    block = 256
    start = time.perf_counter()
    want = segment(image, diameter=diameter, device="cpu")
    in_memory = time.perf_counter() - start
    lazy = zarr.create_array(
        store=str(out.with_suffix(".input.zarr")),
        shape=image.shape,
        dtype=image.dtype,
        chunks=(CHUNK, CHUNK),
    )
    lazy[...] = image
    start = time.perf_counter()  # the same image from disk, default blocks
    segment_to_zarr(
        lazy, out.with_suffix(".timed.zarr"), diameter=diameter, device="cpu"
    )
    from_disk = time.perf_counter() - start
    segment_to_zarr(image, out, diameter=diameter, device="cpu", block_size=block)
    got = np.asarray(read_ome_zarr(out).levels[0])
    crossing = set()
    for axis in (0, 1):
        for cut in range(block, side, block):
            before, after = np.take(want, cut - 1, axis), np.take(want, cut, axis)
            crossing |= set(before[(before == after) & (before > 0)].tolist())
    return {
        "equal": bool(np.array_equal(want, got)),
        "nuclei": int(want.max()),
        "crossing": len(crossing),
        "block": block,
        "in_memory_s": in_memory,
        "from_disk_s": from_disk,
    }


def child(which: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", which, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        sys.exit(f"{which} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32768)
    parser.add_argument("--check", type=int, default=2048, help="equality-check side")
    parser.add_argument("--diameter", type=float, default=20.0)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        which, *rest = args.child
        if which == "segment":
            result = run_segment(Path(rest[0]), Path(rest[1]), float(rest[2]))
        else:
            result = run_check(
                Path(rest[0]), Path(rest[1]), float(rest[2]), int(rest[3])
            )
        print(json.dumps(result))
        return

    print(
        f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"
    )
    with tempfile.TemporaryDirectory(prefix="bench_whole_slide_") as tmp:
        source = Path(tmp) / "input.zarr"
        start = time.perf_counter()
        make_input(source, args.size)
        print(
            f"input: {args.size}x{args.size} uint16 ({args.size**2 * 2 / 2**30:.2f} "
            f"GiB), chunks {CHUNK}, made in {time.perf_counter() - start:.0f} s"
        )
        side = min(args.check, args.size)
        check = child(
            "check",
            str(source),
            str(Path(tmp) / "check.zarr"),
            str(args.diameter),
            str(side),
        )
        print(
            f"equality check ({side}x{side}, blocks of {check['block']}): labels "
            f"{'EQUAL' if check['equal'] else 'DIFFERENT'} to the in-memory segment "
            f"({check['nuclei']} nuclei, {check['crossing']} cut by block borders); "
            f"segment in memory {check['in_memory_s']:.1f} s, segment_to_zarr from "
            f"a zarr copy {check['from_disk_s']:.1f} s "
            f"({check['from_disk_s'] / check['in_memory_s']:.2f}x its time)"
        )
        res = child(
            "segment", str(source), str(Path(tmp) / "labels.zarr"), str(args.diameter)
        )
    megapixels = args.size**2 / 1e6
    rate = megapixels / res["seconds"]
    print(
        f"segment_to_zarr: {res['nuclei']} nuclei in {res['seconds']:.0f} s, "
        f"{rate:.2f} MP/s (target >= 2 on 2 cores; torch threads "
        f"{res['torch_threads']}), peak RSS {res['peak_mib']:.0f} MiB "
        "(target < 1536)"
    )
    print(
        f"  CPU time {res['cpu_seconds']:.0f} s: {megapixels / res['cpu_seconds']:.2f} "
        "MP per CPU-second (x 2 cores = the rate on an otherwise idle machine, if "
        "both cores were kept busy)"
    )


if __name__ == "__main__":
    main()
