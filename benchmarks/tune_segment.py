"""Choose the segmentation thresholds on the tuning fold (never the validation fold).

Run from the repository root::

    PYTHONPATH=src python benchmarks/tune_segment.py [--data DIR] [--model nuclei]

Scores every pair of core threshold (``threshold``) and background threshold
(``defaults.FOREGROUND_BELOW``) of a small grid, then, at the best pair, a few
smallest seeds (``defaults.MIN_SEED``), smallest nuclei (``defaults.MIN_SIZE``, at
the trained size) and resampling tolerances
(``defaults.RESCALE_TOLERANCE``), by pooled mAP and AP@0.5 on the
tuning fold of :func:`napari_pyramids.nn.data.split_ids`, with the diameter
estimated as a user's run would. The shipped defaults are the best row; the
model card records the table.
"""

from __future__ import annotations

import argparse
import itertools

from bench_segment import DEFAULT_DATA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--model", default="nuclei")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cores", type=float, nargs="+", default=[0.3, 0.4, 0.5])
    parser.add_argument(
        "--backgrounds", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5]
    )
    parser.add_argument(
        "--tolerances", type=float, nargs="+", default=[1.0, 1.1, 1.2, 1.35]
    )
    parser.add_argument("--min-seeds", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--min-sizes", type=int, nargs="+", default=[6, 12, 20, 30, 40])
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from napari_pyramids.nn import defaults, infer, load_model
    from napari_pyramids.nn.data import list_ids, read_folder, split_ids
    from napari_pyramids.nn.metrics import score_images

    model = load_model(args.model)
    pairs = read_folder(args.data, split_ids(list_ids(args.data))["tune"])
    print(f"tuning fold: {len(pairs)} images; model {args.model}")

    def score(**options):
        return score_images(
            (p.labels, infer.segment(p.image, model, device="cpu", **options))
            for p in pairs
        )

    print(f"{'core':>6} {'background':>10} | {'AP50':>6} {'mAP':>6} {'AP50/img':>8}")
    best = None
    for core, background in itertools.product(args.cores, args.backgrounds):
        defaults.FOREGROUND_BELOW = background
        s = score(threshold=core).summary()
        print(
            f"{core:6.2f} {background:10.2f} | {s['ap50']:6.3f} {s['map']:6.3f} "
            f"{s['ap50_image']:8.3f}"
        )
        if best is None or s["map"] > best[0]:
            best = (s["map"], core, background)
    _, core, background = best
    print(f"best by pooled mAP: core {core}, background {background}")
    defaults.FOREGROUND_BELOW = background

    def sweep(name: str, values, label: str) -> None:
        """Score each value of the default ``name``, the others as shipped."""
        shipped = getattr(defaults, name)
        for value in values:
            setattr(defaults, name, value)
            s = score(threshold=core).summary()
            print(f"{label} {value:g}: AP50 {s['ap50']:.3f} mAP {s['map']:.3f}")
        setattr(defaults, name, shipped)

    sweep("MIN_SEED", args.min_seeds, "smallest seed (px)")
    sweep("MIN_SIZE", args.min_sizes, "smallest nucleus (px)")
    sweep("RESCALE_TOLERANCE", args.tolerances, "rescale tolerance")


if __name__ == "__main__":
    main()
