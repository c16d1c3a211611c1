"""Out-of-core pyramid writing: napari-pyramids vs ome-zarr-py, same input, same run.

Creates a ``SIZE x SIZE`` uint16 zarr on disk (1024 x 1024 chunks, in a
temporary folder removed afterwards), then writes a 5-level OME-Zarr pyramid
from it with

* ``napari_pyramids.write_ome_zarr`` (Burt & Adelson REDUCE, streamed level by
  level), and
* ``ome_zarr.writer.write_image`` (ome-zarr-py 0.18, its default ``resize``
  method: ``skimage.transform.resize`` with anti-aliasing, per dask block),

each in its own subprocess so that peak resident memory (``ru_maxrss`` of that
process, interpreter and imports included) belongs to one writer only. Runs
alternate between the writers; medians and ratios are printed.

Usage::

    python benchmarks/bench_large.py [--size 16384] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEVELS = 5
CHUNK = 1024


def make_input(path: Path, size: int) -> None:
    """A smooth uint16 scene plus noise, written block by block (never whole)."""
    import numpy as np
    import zarr

    arr = zarr.create_array(
        path, shape=(size, size), chunks=(CHUNK, CHUNK), dtype="uint16"
    )
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:CHUNK, 0:CHUNK].astype(np.float32)
    for y0 in range(0, size, CHUNK):
        for x0 in range(0, size, CHUNK):
            y, x = (yy + y0) / size, (xx + x0) / size
            scene = 20000 + 15000 * np.sin(40 * x) * np.cos(31 * y)
            noise = rng.normal(0, 800, scene.shape)
            block = np.clip(scene + noise, 0, 65535).astype(np.uint16)
            arr[y0 : y0 + CHUNK, x0 : x0 + CHUNK] = block


def run_writer(which: str, source: Path, out: Path) -> dict:
    """Body of one subprocess: write the pyramid, report time and peak RSS."""
    import dask.array as da
    import zarr
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    from napari_pyramids import write_ome_zarr

    src = zarr.open_array(source, mode="r")
    start = time.perf_counter()  # imports done: time the writing only
    if which == "napari-pyramids":
        write_ome_zarr(src, out, levels=LEVELS, chunks=CHUNK)
    else:
        write_image(
            da.from_zarr(src),
            str(out),
            scale_factors=tuple(2**k for k in range(1, LEVELS)),
            method=Methods.RESIZE,
            axes="yx",
            storage_options={"chunks": (CHUNK, CHUNK)},
        )
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "peak_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("WHICH", "SOURCE", "OUT"))
    args = parser.parse_args()
    if args.child:
        which, source, out = args.child
        print(json.dumps(run_writer(which, Path(source), Path(out))))
        return

    writers = ["napari-pyramids", "ome-zarr-py"]
    results = {w: [] for w in writers}
    with tempfile.TemporaryDirectory(prefix="bench_large_") as tmp:
        source = Path(tmp) / "input.zarr"
        t0 = time.perf_counter()
        make_input(source, args.size)
        mib = args.size**2 * 2 / 2**20
        print(
            f"input: {args.size}x{args.size} uint16 ({mib:.0f} MiB), chunks "
            f"{CHUNK}x{CHUNK}, made in {time.perf_counter() - t0:.1f} s; "
            f"{LEVELS} levels; {args.repeats} runs each, alternating"
        )
        for r in range(args.repeats):
            for which in writers:
                out = Path(tmp) / f"{which}.ome.zarr"
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", which, str(source), str(out)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode:
                    sys.exit(f"{which} failed:\n{proc.stderr}")
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                results[which].append(res)
                print(
                    f"  run {r + 1} {which:16s} {res['seconds']:7.1f} s  "
                    f"peak RSS {res['peak_mib']:6.0f} MiB"
                )
                shutil.rmtree(out)

    med = {
        w: (
            statistics.median(x["seconds"] for x in results[w]),
            max(x["peak_mib"] for x in results[w]),
        )
        for w in writers
    }
    ours_t, ours_m = med["napari-pyramids"]
    print(
        f"\n{'writer':18s} {'median s':>9s} {'max peak MiB':>13s} {'time ratio':>11s}"
    )
    for w in writers:
        t, m = med[w]
        print(f"{w:18s} {t:9.1f} {m:13.0f} {t / ours_t:11.2f}")
    print(
        f"\nnapari-pyramids is {med['ome-zarr-py'][0] / ours_t:.2f}x the speed of "
        f"ome-zarr-py; peak memory {ours_m:.0f} MiB vs {med['ome-zarr-py'][1]:.0f} MiB"
    )


if __name__ == "__main__":
    main()
