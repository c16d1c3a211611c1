"""Train the "nuclei" model on synthetic fluorescence nuclei.

The shipped weights ``weights/nuclei.safetensors`` were made in three runs,
each continuing the last (``--init``)::

    python -m napari_pyramids.nn.train --seed 0 --steps 6000 --patch 192 \\
        --core-fraction 0.5 --out stage0.safetensors
    python -m napari_pyramids.nn.train --init stage0.safetensors --seed 1 \\
        --steps 3000 --lr 1e-3 --ema 0.999 --out stage1.safetensors
    python -m napari_pyramids.nn.train --init stage1.safetensors --seed 2 \\
        --steps 3000 --lr 5e-4 --ema 0.9995 --out nuclei.safetensors

The first run's output is the weights shipped before these (SHA-256
``7e8198b6...6634``, in git history at commit da88b7b). It took 48.3
minutes with ``--threads 2`` on this 2-core machine
(torch 2.13, about 0.48 s per step, the image generator included); the two
fine-tuning runs 29.0 and 27.8 minutes with ``--threads 1`` each, two runs
side by side. The shipped file holds the last run's tensors, re-saved with
the whole recipe in its metadata. Every image comes from :mod:`.synthetic`,
drawn from ``--seed``; the evaluation at the end uses seed ``seed + 1000``,
images the model never saw. No run draws from the held-out sets'
seeds (:data:`.synthetic.HELD_OUT_SETS`).

Classes: 0 background, 1 core, 2 rim (:func:`.synthetic.classes_from_labels`:
the core is where the distance to the nucleus outline is at least
``--core-fraction`` of its largest value). Cores of touching nuclei are kept
apart by two rims, so each seeds one instance. The loss is cross-entropy with
the rim weighted up and, unless ``--no-balance``, small nuclei weighted up
(:func:`pixel_weights`). With ``--ema`` the saved model is the exponential
moving average of the weights. The weights are saved to ``--out`` every
``--checkpoint-every`` steps and at the end.

Instance F1 at IoU 0.5 of the shipped weights with :func:`.infer.segment`'s
defaults (core threshold 0.4, background below 0.3): 0.81 (16 held-out
images, seed 1000), 0.87 (10, seed 2024), 0.91 (10, seed 4242); on five
fresh sets of 20 images never used for any choice (seeds 31337, 5001-5004)
0.90, 0.82, 0.91, 0.91, 0.88, pooled 0.89 over their 6302 nuclei (the
stage-0 weights at their old defaults, core 0.5 and background 0.4: 0.86).
Images crowded with blurred nuclei under 10 px wide, some at a few photons
per pixel, stay at 0.5-0.85 (touching small nuclei merge); most others
reach 0.9-1.0. The seeds are the weak half: on the three held-out sets
pooled (F1 0.84), three in four missed nuclei are merged with a neighbour,
and growing the predicted foreground from the true cores would give 0.96,
while the true foreground grown from the predicted cores gives 0.88
(benchmarks/bench_segment.py prints these). On the one real annotated
image at hand (DSB 2018, same script) it is 0.85, against 0.67 for Otsu +
distance-transform watershed (0.35-0.36 on the generated sets).

Of the gain, the thresholds give most (stage 0 with the new ones: 0.79 /
0.85 / 0.90 on the three sets, 0.81 on the real image) and the two averaged
fine-tuning runs the rest (0.80 / 0.86 / 0.91 and 0.84 after stage 1). The
thresholds were picked on seed 1000 and the real image together: on the
generated sets a core threshold of 0.35-0.4 is best at every nucleus size,
while the real image prefers 0.5 with the stage-0 weights and 0.4 with the
fine-tuned ones.

Tried and dropped: a wider decoder (``--skip-widths 16 32 --decoder-widths
32 48``, 20 % slower; no gain at equal steps); 4000 more steps without
weight averaging (+0.01 on one set, -0.02 on the real image); 4x loss
weight where neighbouring nuclei meet (U-Net's separation weight): the core
became under-confident and no better at the best threshold; small nuclei
weighted up to 6x instead of 3x: 0.81 on the real image; cropping crowded
training images more often (odds (1 + nuclei) ** 0.5, F1 counting nuclei;
stage-1 run otherwise): +0.014 and +0.017 on seeds 1000 and 2024, none on
4242, but 0.80 on the real image (0.84 without); a third fine-tuning run
(seed 3, either learning rate): +0.005 to +0.008 on seed 1000 but 0.81-0.83
on the real image; averaging the weights of
the two stage-2 candidates (a "model soup"): no gain. Inference-side, on
the stage-0 weights: segmenting images of small nuclei at 2x (bilinear or
cubic) lost 0.04 on seed 1000; seeds from a weaker core threshold where no
strong core is (hysteresis) cost 0.03 on the real image; 8-fold flip/rotate
averaging gained 0.005-0.016 at 8x the time. On the shipped weights,
splitting merged cores afterwards does not help, because a merged core has
no saddle to split at: watershed of the core probability from its
h-maxima (within 0.004 per set) or of the core's distance transform
(-0.005 to -0.12), cores where
P(core) / (P(core) + P(rim)) is high (-0.01 to -0.08), and other seed,
size and growth limits (within 0.002). Smaller training cores, to widen the
gap between touching ones (a stage-2-like run from the shipped weights
with ``--core-fraction`` 0.6 or 0.65, seed 3, 2500 steps): over the three
held-out and five fresh sets within 0.002 of the shipped weights at their
best thresholds (0.25-0.3), 0.83-0.85 on the real image. A fourth output
channel regressing a seed map, so that touching nuclei keep a saddle
between them (the shipped weights widened and fine-tuned 2500 steps with
the stage-2 settings, binary cross-entropy on the map): seeds from the
normalised distance to the outline (its threshold, its h-maxima, or
h-maxima splitting the predicted cores) scored 0.85-0.87 on the fresh sets
and 0.75-0.86 on the real image; peaks of a Gaussian centre map split
nuclei apart (0.80 at best), against 0.89 and 0.85 for the cores. Two
more stage-3 runs from the shipped weights: batch 12 at ``--lr 3e-4 --ema
0.999`` (2000 steps, 31 min) and the rim weighted 3x instead of 2x (2500
steps at ``--lr 5e-4 --ema 0.999``, 27 min): over all eight sets within
0.001 and -0.003 of the shipped weights at their best thresholds, 0.84 and
0.86 on the real image.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .model import CompactDeepLab
from .normalize import normalize
from .synthetic import classes_from_labels, make_nuclei_image

__all__ = ["train", "main"]

_CLASS_WEIGHTS = (1.0, 1.0, 2.0)
#: Area (px) of a nucleus of 24 px diameter: smaller nuclei weigh more.
_REFERENCE_AREA = np.pi * 12.0**2
_MAX_NUCLEUS_WEIGHT = 3.0


def pixel_weights(labels: np.ndarray, classes: np.ndarray, balance: bool) -> np.ndarray:
    """Per-pixel loss weights: class weights times, with ``balance``, a size term.

    Instance F1 counts every nucleus once, but a per-pixel loss counts a
    nucleus by its area, so a 9 px nucleus weighs 7x less than a 24 px one
    and crowds of small nuclei are learnt last. With ``balance`` each
    nucleus's pixels weigh ``sqrt(reference area / its area)``, between 1
    and 3: small nuclei count more without letting single pixels dominate.
    """
    weights = np.asarray(_CLASS_WEIGHTS, np.float32)[classes]
    if balance and labels.max():
        areas = np.bincount(labels.ravel()).astype(np.float32)
        size = np.sqrt(_REFERENCE_AREA / np.maximum(areas, 1.0))
        size = np.clip(size, 1.0, _MAX_NUCLEUS_WEIGHT)
        size[0] = 1.0
        weights *= size[labels]
    return weights


class _Pool:
    """A pool of synthetic images, a few replaced per step, cropped at random."""

    def __init__(
        self,
        rng: np.random.Generator,
        size: int,
        shape: tuple[int, int],
        core_fraction: float,
        balance: bool,
    ) -> None:
        self.rng, self.shape, self.core_fraction = rng, shape, core_fraction
        self.balance = balance
        self.items = [self._draw() for _ in range(size)]

    def _draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image, labels = make_nuclei_image(self.shape, self.rng)
        classes = classes_from_labels(labels, self.core_fraction)
        return normalize(image), classes, pixel_weights(labels, classes, self.balance)

    def refresh(self, count: int) -> None:
        for _ in range(count):
            self.items[self.rng.integers(len(self.items))] = self._draw()

    def batch(
        self, batch_size: int, patch: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (N, 1, p, p), classes (N, p, p) and pixel weights (N, p, p)."""
        crops: list[list[np.ndarray]] = [[], [], []]
        for _ in range(batch_size):
            maps = self.items[self.rng.integers(len(self.items))]
            y = self.rng.integers(0, maps[0].shape[0] - patch + 1)
            x = self.rng.integers(0, maps[0].shape[1] - patch + 1)
            k = int(self.rng.integers(4))
            flip = self.rng.random() < 0.5
            for crop, array in zip(crops, maps, strict=True):
                array = np.rot90(array[y : y + patch, x : x + patch], k)
                crop.append(np.ascontiguousarray(array[:, ::-1] if flip else array))
        images, classes, weights = (torch.from_numpy(np.stack(c)) for c in crops)
        return images[:, None], classes.long(), weights


def train(
    *,
    seed: int = 0,
    steps: int = 6000,
    batch_size: int = 8,
    patch: int = 192,
    lr: float = 3e-3,
    pool_size: int = 48,
    core_fraction: float = 0.5,
    balance: bool = True,
    ema_decay: float | None = None,
    model_options: dict[str, Any] | None = None,
    init: CompactDeepLab | None = None,
    log_every: int = 50,
    checkpoint_every: int = 250,
    on_checkpoint: Callable[[CompactDeepLab, int], None] | None = None,
) -> CompactDeepLab:
    """Train a :class:`CompactDeepLab` (from scratch, or on from ``init``); eval mode.

    ``model_options`` are passed to :class:`CompactDeepLab` (its defaults are
    the shipped architecture); ``init``, a model to continue from
    (fine-tuning), replaces them and is left untouched.

    ``ema_decay``: when given, the returned (and checkpointed) model is the
    exponential moving average of the weights and BN statistics over the
    steps (Polyak averaging), which smooths out the last steps' noise at no
    cost at inference.

    Every ``checkpoint_every`` steps ``on_checkpoint(model, step)`` is called
    (the command saves the weights then, so a run cut short leaves a model).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if init is not None:
        model = copy.deepcopy(init)
    else:
        model = CompactDeepLab(**(model_options or {}))
    pool = _Pool(rng, pool_size, (256, 256), core_fraction, balance)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps
    )
    model.train()
    average = (
        None
        if ema_decay is None
        else AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True
        )
    )
    result = model if average is None else average.module
    start = time.perf_counter()
    for step in range(1, steps + 1):
        images, targets, weights = pool.batch(batch_size, patch)
        losses = F.cross_entropy(model(images), targets, reduction="none")
        loss = (losses * weights).sum() / weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if average is not None:
            average.update_parameters(model)
        pool.refresh(1)
        if step % log_every == 0 or step == steps:
            minutes = (time.perf_counter() - start) / 60
            print(
                f"step {step:5d}  loss {loss.item():.4f}  {minutes:.1f} min", flush=True
            )
        if on_checkpoint is not None and step % checkpoint_every == 0 < steps - step:
            on_checkpoint(result, step)
    return result.eval()


def save(model: CompactDeepLab, path: str | Path, **meta: object) -> None:
    """Write the state dict as safetensors, the architecture as metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "config": json.dumps(model.config),
        **{k: json.dumps(v) for k, v in meta.items()},
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)


def evaluate(model: torch.nn.Module, seed: int, count: int = 16) -> dict[str, float]:
    """F1 at IoU 0.5 over ``count`` synthetic 256x256 images drawn from ``seed``."""
    from .infer import segment
    from .instances import match_instances
    from .synthetic import make_dataset

    totals = {"tp": 0, "fp": 0, "fn": 0}
    for image, labels in make_dataset(count, (256, 256), seed):
        result = match_instances(labels, segment(image, model, device="cpu"))
        for key in totals:
            totals[key] += result[key]
    tp, fp, fn = totals["tp"], totals["fp"], totals["fn"]
    return {**totals, "f1": 2 * tp / max(1, 2 * tp + fp + fn)}


#: CompactDeepLab arguments the command exposes: (nargs, metavar, help).
_ARCHITECTURE_OPTIONS = {
    "widths": (
        4,
        ("STEM", "L1", "L2", "L3"),
        "channels of the stem and the three backbone stages",
    ),
    "aspp_channels": (None, None, "ASPP width"),
    "skip_widths": (2, ("S2", "S4"), "decoder skip channels at strides 2 and 4"),
    "decoder_widths": (2, ("S2", "S4"), "decoder fusion channels at strides 2 and 4"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch", type=int, default=192)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--core-fraction",
        type=float,
        default=0.5,
        help="core: distance to the outline >= this fraction of its maximum",
    )
    parser.add_argument(
        "--no-balance",
        dest="balance",
        action="store_false",
        help="weigh every pixel alike instead of favouring small nuclei",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="DECAY",
        help="save the exponential moving average of the weights (e.g. 0.999)",
    )
    parser.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="continue from a registered model or weights file (fine-tuning), "
        "keeping its architecture",
    )
    for name, (nargs, metavar, text) in _ARCHITECTURE_OPTIONS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            nargs=nargs,
            metavar=metavar,
            help=f"{text} (default: CompactDeepLab's)",
        )
    parser.add_argument(
        "--checkpoint-every", type=int, default=250, help="save to --out every N steps"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", required=True, help="output .safetensors path")
    args = parser.parse_args(argv)
    architecture = {
        name: getattr(args, name)
        for name in _ARCHITECTURE_OPTIONS
        if getattr(args, name) is not None
    }
    if args.init is not None and architecture:
        flags = ", ".join("--" + name.replace("_", "-") for name in architecture)
        parser.error(
            f"--init keeps the architecture of the model it loads; drop {flags}"
        )
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    meta = {
        "seed": args.seed,
        "core_fraction": args.core_fraction,
        "balance": args.balance,
        "ema": args.ema,
    }
    init = None
    if args.init is not None:
        from .weights import load_model, sha256_file, weights_file

        init = load_model(args.init)
        meta["init"] = {
            "model": args.init,
            "sha256": sha256_file(weights_file(args.init)),
        }

    def checkpoint(model: CompactDeepLab, step: int) -> None:
        save(model, args.out, **meta, steps=step)
        print(f"checkpoint: step {step} saved to {args.out}", flush=True)

    model = train(
        seed=args.seed,
        steps=args.steps,
        batch_size=args.batch_size,
        patch=args.patch,
        lr=args.lr,
        core_fraction=args.core_fraction,
        balance=args.balance,
        ema_decay=args.ema,
        init=init,
        model_options=architecture,
        checkpoint_every=args.checkpoint_every,
        on_checkpoint=checkpoint,
    )
    minutes = (time.perf_counter() - start) / 60
    save(model, args.out, **meta, steps=args.steps, train_minutes=round(minutes, 1))
    print(f"saved {args.out} after {minutes:.1f} min")
    print("held-out synthetic F1@0.5:", evaluate(model, seed=args.seed + 1000))


if __name__ == "__main__":
    main()
