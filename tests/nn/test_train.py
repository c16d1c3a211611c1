import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_pyramids.nn import CompactDeepLab, load_model
from napari_pyramids.nn.instances import (
    instance_overlaps,
    instances_from_masks,
    match_instances,
)
from napari_pyramids.nn.synthetic import (
    classes_from_labels,
    make_dataset,
    make_nuclei_image,
)
from napari_pyramids.nn.train import main, pixel_weights, save, train


def test_training_smoke_and_save_load_round_trip(tmp_path):
    model = train(steps=3, batch_size=2, patch=64, pool_size=2, log_every=100)
    path = tmp_path / "m.safetensors"
    save(model, path, seed=0, steps=3)
    loaded = load_model(path)
    x = torch.rand(1, 1, 48, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_saved_decoder_widths_come_back(tmp_path):
    options = dict(widths=(4, 8, 8, 8), aspp_channels=8, skip_widths=(4, 6))
    model = train(steps=1, batch_size=2, patch=32, pool_size=1, model_options=options)
    path = tmp_path / "narrow.safetensors"
    save(model, path)
    loaded = load_model(path)
    assert loaded.config["skip_widths"] == [4, 6]
    assert loaded.decoder.low[0].out_channels == 4
    x = torch.rand(1, 1, 40, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))


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


def test_synthetic_is_seeded_and_cores_split_touching_nuclei():
    a, la = make_nuclei_image((96, 96), 5)
    b, lb = make_nuclei_image((96, 96), 5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    labels = np.zeros((20, 20), np.int32)
    labels[5:15, 2:10], labels[5:15, 10:18] = 1, 2
    classes = classes_from_labels(labels)
    assert (classes[labels == 0] == 0).all()  # the rim never leaves the nuclei
    assert (classes[labels > 0] > 0).all()
    # the two cores do not touch: each nucleus seeds one instance
    cores, n = ndi.label(classes == 1)
    assert n == 2
    assert set(np.unique(labels[cores == 1])) == {1}
    assert set(np.unique(labels[cores == 2])) == {2}
    # the touching line and the outlines are rim
    assert list(classes[10, 8:12]) == [2, 2, 2, 2]
    assert classes[5, 5] == 2 and classes[9, 5] == 1
    with pytest.raises(ValueError, match="core_fraction"):
        classes_from_labels(labels, core_fraction=1.5)


def test_ground_truth_classes_give_back_the_instances():
    """Post-processing fed the true class map recovers the nuclei (F1 > 0.95)."""
    totals = dict(tp=0, fp=0, fn=0)
    for _, labels in make_dataset(4, (128, 128), 77):
        classes = classes_from_labels(labels)
        pred = instances_from_masks(classes == 1, classes > 0)
        for key, value in match_instances(labels, pred).items():
            if key in totals:
                totals[key] += value
    f1 = 2 * totals["tp"] / (2 * totals["tp"] + totals["fp"] + totals["fn"])
    assert f1 > 0.95


def test_core_specks_do_not_split_a_nucleus():
    """A core speck smaller than min_seed seeds nothing; a real core still does."""
    foreground = np.zeros((40, 40), bool)
    foreground[5:35, 5:35] = True
    interior = np.zeros_like(foreground)
    interior[12:28, 12:20] = True  # the nucleus's core
    interior[25:27, 30:31] = True  # a 2-pixel speck near its edge
    labels = instances_from_masks(interior, foreground, min_seed=4)
    assert labels.max() == 1 and (labels[foreground] == 1).all()
    assert instances_from_masks(interior, foreground, min_seed=1).max() == 2


def test_growth_does_not_depend_on_the_row_bands():
    """Seeds grow across the row bands (256 rows) as they would in one piece.

    The reference grows the whole image at once, the plain way. The
    foreground is one large smooth blob, so seeds grow the full 20 steps and
    cross band edges.
    """
    rng = np.random.default_rng(5)
    foreground = ndi.gaussian_filter(rng.random((700, 600)), 8) > 0.49
    interior = foreground & (rng.random(foreground.shape) > 0.9995)
    interior = ndi.binary_dilation(interior, iterations=2)
    seeds, count = ndi.label(interior)
    expected = seeds.astype(np.float32)
    for _ in range(20):
        dilated = cv2.dilate(expected, np.ones((3, 3), np.uint8))
        fill = foreground & (expected == 0) & (dilated > 0)
        expected[fill] = dilated[fill]
    expected = expected.astype(np.int64)
    orphans, _ = ndi.label(foreground & (expected == 0))
    expected[orphans > 0] = orphans[orphans > 0] + count
    labels = instances_from_masks(interior, foreground, min_seed=1, min_size=1)
    assert count > 50 and np.array_equal(labels, expected)
    empty = np.zeros((0, 4), bool)
    assert instances_from_masks(empty, empty).shape == (0, 4)


def test_matching_counts_pairs_above_the_iou_threshold():
    true = np.zeros((10, 10), np.int32)
    true[0:4, 0:4], true[0:4, 6:10], true[7:9, 7:9] = 3, 9, 12  # gaps in labels
    pred = np.zeros_like(true)
    pred[0:4, 0:4] = 5  # exact
    pred[0:4, 6:8] = 7  # half of true 9: IoU 0.5, not above it
    pred[6:7, 0:3] = 1  # nothing there
    inter, iou, area_true, area_pred = instance_overlaps(true, pred)
    assert area_true.tolist() == [16, 16, 4] and area_pred.tolist() == [3, 16, 8]
    assert inter[0, 1] == 16 and inter[1, 2] == 8 and iou[1, 2] == 0.5
    result = match_instances(true, pred)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 2, 2)
    assert result["f1"] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="shapes differ"):
        match_instances(true, pred[:5])


def test_checkpoints_are_saved_during_training():
    seen = []
    train(
        steps=4,
        batch_size=2,
        patch=64,
        pool_size=1,
        log_every=100,
        checkpoint_every=2,
        on_checkpoint=lambda model, step: seen.append(step),
    )
    assert seen == [2]  # the last step is saved by the caller, not as a checkpoint


def _small_run(steps=2, **options):
    return train(steps=steps, batch_size=2, patch=48, pool_size=2, **options)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_fine_tuning_leaves_the_starting_model_alone():
    start = CompactDeepLab(widths=(4, 8, 8, 8), aspp_channels=8)
    before = _state(start)
    tuned = _small_run(init=start)
    after = start.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert tuned.config == start.config
    assert any(
        not torch.equal(before[k], v)
        for k, v in tuned.state_dict().items()
        if v.is_floating_point()
    )


def test_ema_returns_and_checkpoints_the_average():
    start = CompactDeepLab(widths=(4, 8, 8, 8), aspp_channels=8)
    last = _state(_small_run(init=start))
    # decay 0: the average is the latest weights, i.e. plain training
    latest = _small_run(init=start, ema_decay=0.0).state_dict()
    assert all(torch.equal(last[k], latest[k]) for k in last)

    def snapshots(decay):
        seen = []
        _small_run(
            steps=4,
            init=start,
            ema_decay=decay,
            checkpoint_every=1,
            on_checkpoint=lambda model, step: seen.append(_state(model)),
        )
        return seen

    # decay 1: the checkpointed average keeps its first value; decay 0 moves
    frozen, moving = snapshots(1.0), snapshots(0.0)
    assert len(frozen) == 3
    key = "classifier.4.bias"
    assert all(torch.equal(frozen[0][key], later[key]) for later in frozen[1:])
    assert not torch.equal(moving[0][key], moving[-1][key])


def test_init_refuses_architecture_flags(tmp_path, capsys):
    argv = ["--init", "nuclei", "--widths", "8", "8", "8", "8"]
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(tmp_path / "m.safetensors")])
    assert "drop --widths" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()
