"""The training loop: crops at the trained size, checkpoints, resume, saving."""

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_pyramids.nn import CompactDeepLab, load_model
from napari_pyramids.nn.data import AnnotatedImage, nucleus_diameter
from napari_pyramids.nn.rescale import TRAINED_DIAMETER
from napari_pyramids.nn.synthetic import classes_from_labels, make_nuclei_image
from napari_pyramids.nn.train import (
    CropSampler,
    TrainingStopped,
    contact_zone,
    main,
    pixel_weights,
    train,
)
from napari_pyramids.nn.weights import save_model
from napari_pyramids.progress import Cancelled

SHARED = Path(__file__).resolve().parents[3] / "shared/data/dsb2018-train"
TINY = dict(widths=(4, 8, 8, 8), aspp_channels=8)


@pytest.fixture(scope="module")
def annotated():
    rng = np.random.default_rng(3)
    return [AnnotatedImage(str(i), *make_nuclei_image((96, 96), rng)) for i in range(2)]


def _disc_image(diameter, shape=(240, 240)):
    """Discs of one diameter on a grid: a nucleus image of known size."""
    labels = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    step = int(diameter * 1.6)
    n = 0
    for cy in range(step // 2, shape[0] - step // 2, step):
        for cx in range(step // 2, shape[1] - step // 2, step):
            n += 1
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2] = n
    return AnnotatedImage("discs", (labels > 0).astype(np.uint8) * 200, labels)


def test_crops_bring_nuclei_to_the_trained_diameter():
    item = _disc_image(40)
    sampler = CropSampler(
        [item], np.random.default_rng(0), patch=96, scale_range=(1.0, 1.0)
    )
    for _ in range(5):
        image, classes, weights = sampler.crop()
        assert image.shape == classes.shape == weights.shape == (96, 96)
        assert image.dtype == np.float32 and classes.dtype == np.uint8
        # whole discs in the crop have the trained diameter (classes > 0 = nuclei)
        from scipy import ndimage as ndi

        blobs, n = ndi.label(classes > 0)
        inner = [
            i
            for i in range(1, n + 1)
            if not np.isin(i, np.r_[blobs[0], blobs[-1], blobs[:, 0], blobs[:, -1]])
        ]
        if inner:
            whole = np.where(np.isin(blobs, inner), blobs, 0)
            assert nucleus_diameter(whole) == pytest.approx(TRAINED_DIAMETER, rel=0.1)


def test_crops_outside_the_image_or_region_weigh_nothing():
    item = _disc_image(10, shape=(40, 50))  # scaled about 2x: smaller than 128
    region = np.zeros(item.labels.shape, bool)
    region[:, :25] = True
    sampler = CropSampler(
        [item],
        np.random.default_rng(1),
        patch=128,
        scale_range=(1.0, 1.0),
        regions=[region],
    )
    image, _, weights = sampler.crop()
    inside = image != 0  # the padding is exactly 0, the image never is
    assert 0.3 < inside.mean() < 0.9
    assert not weights[~inside].any()
    # half of the image is annotated
    assert (weights > 0).sum() == pytest.approx(inside.sum() / 2, rel=0.03)
    with pytest.raises(ValueError, match="one region"):
        CropSampler([item], np.random.default_rng(1), regions=[])
    empty = AnnotatedImage("e", np.zeros((8, 8)), np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match="none of the annotated images"):
        CropSampler([empty], np.random.default_rng(1))


def test_pixel_weights_favour_small_nuclei():
    labels = np.zeros((60, 60), np.int32)
    labels[2:6, 2:6] = 1  # 16 px: the largest weight (3)
    labels[10:50, 10:50] = 2  # 1600 px: larger than the reference, weight 1
    classes = classes_from_labels(labels)
    balanced = pixel_weights(labels, classes, balance=True)
    plain = pixel_weights(labels, classes, balance=False)
    # background 1, core 1, rim 2 without balancing
    assert plain[0, 0] == 1 and plain[30, 30] == 1 and plain[10, 30] == 2
    np.testing.assert_array_equal(balanced[labels != 1], plain[labels != 1])
    np.testing.assert_array_equal(balanced[labels == 1], 3 * plain[labels == 1])


def test_contact_zone_is_where_two_nuclei_meet():
    labels = np.zeros((12, 24), np.int32)
    labels[2:10, 1:6] = 1
    labels[2:10, 6:11] = 2  # touches 1 along column 5 | 6
    labels[2:10, 17:22] = 3  # 6 px away from 2: meets nothing
    zone = contact_zone(labels, radius=2)
    # within 2 px (chessboard) of both 1 and 2: columns 4-7, rows 0-11
    np.testing.assert_array_equal(np.flatnonzero(zone.any(axis=0)), [4, 5, 6, 7])
    assert zone[:, 4:8].all()
    assert not zone[:, 12:].any()
    # background up to 2 * radius - 1 pixels wide between them counts too
    apart = np.zeros((8, 16), np.int32)
    apart[2:6, 1:5], apart[2:6, 8:12] = 1, 2  # columns 5-7 between them
    zone = contact_zone(apart, radius=2)
    np.testing.assert_array_equal(np.flatnonzero(zone.any(axis=0)), [6])
    apart[2:6, 8:12], apart[2:6, 9:13] = 0, 2  # one column more: they do not meet
    assert not contact_zone(apart, radius=2).any()


def test_pixel_weights_weigh_contacts_up():
    labels = np.zeros((12, 24), np.int32)
    labels[2:10, 1:6], labels[2:10, 6:11] = 1, 2
    classes = classes_from_labels(labels)
    plain = pixel_weights(labels, classes, balance=False)
    heavy = pixel_weights(labels, classes, balance=False, contact=4.0)
    zone = contact_zone(labels)
    np.testing.assert_array_equal(heavy[zone], 4 * plain[zone])
    np.testing.assert_array_equal(heavy[~zone], plain[~zone])
    with pytest.raises(ValueError, match="contact weight must be positive"):
        pixel_weights(labels, classes, balance=False, contact=0.0)


def test_training_smoke_and_save_load_round_trip(tmp_path, annotated):
    model = train(annotated, steps=3, batch_size=2, patch=64, model_options=TINY)
    path = save_model(model, tmp_path / "m.safetensors", seed=0, steps=3)
    loaded = load_model(path)
    assert loaded.config == model.config
    x = torch.rand(1, 1, 48, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(ValueError, match="safetensors"):
        save_model(model, tmp_path / "m.pt")


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} absent (shared data)")
def test_training_smoke_on_real_images():
    from napari_pyramids.nn.data import list_ids, read_folder, split_ids

    ids = split_ids(list_ids(SHARED))["train"][:4]
    model = train(
        read_folder(SHARED, ids),
        steps=2,
        batch_size=2,
        patch=96,
        init=load_model("nuclei"),
    )
    assert not model.training
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _small_run(images, steps=2, **options):
    return train(images, steps=steps, batch_size=2, patch=48, **options)


def test_fine_tuning_leaves_the_starting_model_alone(annotated):
    start = CompactDeepLab(**TINY)
    before = _state(start)
    tuned = _small_run(annotated, init=start)
    after = start.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert tuned.config == start.config
    assert any(
        not torch.equal(before[k], v)
        for k, v in tuned.state_dict().items()
        if v.is_floating_point()
    )


def test_ema_returns_and_checkpoints_the_average(annotated):
    start = CompactDeepLab(**TINY)
    last = _state(_small_run(annotated, init=start))
    # decay 0: the average is the latest weights, i.e. plain training
    latest = _small_run(annotated, init=start, ema_decay=0.0).state_dict()
    assert all(torch.equal(last[k], latest[k]) for k in last)

    def snapshots(decay):
        seen = []
        _small_run(
            annotated,
            steps=4,
            init=start,
            ema_decay=decay,
            checkpoint_every=1,
            on_checkpoint=lambda model, step: seen.append(_state(model)),
        )
        return seen

    # decay 1: the checkpointed average keeps its first value; decay 0 moves
    frozen, moving = snapshots(1.0), snapshots(0.0)
    assert len(frozen) == 3  # steps 1-3; the last step is the caller's to save
    key = "classifier.4.bias"
    assert all(torch.equal(frozen[0][key], later[key]) for later in frozen[1:])
    assert not torch.equal(moving[0][key], moving[-1][key])


def test_a_cut_off_run_resumes_from_its_checkpoint(tmp_path, annotated, capsys):
    """Cancelled after step 3 (checkpoint at 2): the rerun does steps 3-4 only."""
    checkpoint = tmp_path / "run.ckpt"
    start = CompactDeepLab(**TINY)
    steps_seen = []
    options = dict(init=start, steps=4, checkpoint=checkpoint, checkpoint_every=2)
    with pytest.raises(TrainingStopped, match="at step 3") as stopped:
        _small_run(
            annotated,
            **options,
            cancel=lambda: len(steps_seen) == 3,
            progress=lambda done, total: steps_seen.append((done, total)),
        )
    assert isinstance(stopped.value, Cancelled)
    assert steps_seen == [(1, 4), (2, 4), (3, 4)]
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    resumed, losses = [], []
    model = _small_run(
        annotated,
        **options,
        progress=lambda done, _: resumed.append(done),
        on_loss=lambda step, loss: losses.append((step, loss)),
    )
    assert resumed == [3, 4] and "resumed" in capsys.readouterr().out
    assert [s for s, _ in losses] == [3, 4]
    assert all(np.isfinite(loss) and loss > 0 for _, loss in losses)
    assert torch.load(checkpoint, weights_only=True)["step"] == 4
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cancel_is_asked_after_every_step_but_the_last(annotated):
    """As :func:`napari_pyramids.progress.drive` does: the last step's work stays."""
    done, asked = [], []
    _small_run(
        annotated,
        steps=3,
        progress=lambda step, _: done.append(step),
        cancel=lambda: asked.append(done[-1]) or False,
    )
    assert done == [1, 2, 3] and asked == [1, 2]


def test_time_limit_ends_training_early(annotated):
    steps = []
    _small_run(
        annotated,
        steps=50,
        time_limit=0.0,
        progress=lambda done, total: steps.append((done, total)),
    )
    assert steps == [(1, 50)]


def test_a_time_limit_alone_reports_total_0_and_can_be_cancelled(annotated):
    """With ``steps=None`` the last step is not known: total 0, cancel always asked."""
    seen = []
    with pytest.raises(TrainingStopped, match="at step 2"):
        _small_run(
            annotated,
            steps=None,
            time_limit=600.0,
            progress=lambda done, total: seen.append((done, total)),
            cancel=lambda: len(seen) == 2,
        )
    assert seen == [(1, 0), (2, 0)]


def test_cli_refuses_to_overwrite_a_cut_off_run(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    out.with_name("m.safetensors.ckpt").write_bytes(b"")
    with pytest.raises(SystemExit):
        main(["--steps", "1", "--out", str(out)])
    assert "--resume" in capsys.readouterr().err


def test_init_refuses_architecture_flags(tmp_path, capsys):
    argv = ["--init", "nuclei", "--widths", "8", "8", "8", "8"]
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(tmp_path / "m.safetensors")])
    assert "drop --widths" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_cli_trains_checkpoints_and_records_the_steps_done(tmp_path):
    import json

    from safetensors import safe_open

    out = tmp_path / "m.safetensors"
    argv = ["--steps", "3", "--batch-size", "2", "--patch", "48", "--threads", "1"]
    argv += ["--widths", "4", "8", "8", "8", "--aspp-channels", "8", "--out", str(out)]
    main(argv)
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert json.loads(meta["steps_done"]) == 3 and json.loads(meta["steps"]) == 3
    assert (
        torch.load(out.with_name("m.safetensors.ckpt"), weights_only=True)["step"] == 3
    )
    assert load_model(out).config["widths"] == [4, 8, 8, 8]
