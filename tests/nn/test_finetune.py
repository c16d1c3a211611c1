"""Fine-tuning from a few painted label images."""

import numpy as np
import pytest
import torch

from napari_pyramids.nn import CompactDeepLab, load_model, segment
from napari_pyramids.nn.data import AnnotatedImage
from napari_pyramids.nn.finetune import FinetuneCancelled, default_region, finetune
from napari_pyramids.nn.synthetic import make_nuclei_image
from napari_pyramids.nn.train import CropSampler
from napari_pyramids.nn.weights import save_model
from napari_pyramids.progress import Cancelled


@pytest.fixture(scope="module")
def pair():
    return make_nuclei_image((160, 160), np.random.default_rng(11))


def test_finetune_returns_a_model_that_segments_and_saves(pair, tmp_path):
    image, labels = pair
    before = image.copy(), labels.copy()
    base = load_model("nuclei")
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    seen, losses, scores = [], [], []
    model = finetune(
        [(image, labels)],
        base=base,
        steps=4,
        time_limit=60,
        progress=lambda done, total: seen.append((done, total)),
        on_loss=lambda step, loss: losses.append(step),
        on_score=lambda step, ap50: scores.append((step, ap50)),
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert losses == [1, 2, 3, 4]
    assert scores[0][0] == 0 and scores[-1][0] == 4
    assert all(0 <= ap50 <= 1 for _, ap50 in scores)
    record = model.finetune_record
    assert record.steps == 4 and record.pairs[0]["shape"] == [160, 160]
    assert 0 <= record.holdout_ap50_before <= record.holdout_ap50_after <= 1
    assert segment(image, model, device="cpu").max() > 0
    np.testing.assert_array_equal(image, before[0])
    np.testing.assert_array_equal(labels, before[1])
    assert all(torch.equal(base_state[k], v) for k, v in base.state_dict().items())
    path = save_model(model, tmp_path / "mine.safetensors")
    loaded = load_model(path)
    x = torch.rand(1, 1, 64, 48)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        assert '"holdout_ap50_after"' in handle.metadata()["finetune"]


def test_pixels_outside_the_region_do_not_change_the_loss():
    """Two images equal inside the region, different outside: identical crops' loss."""
    rng = np.random.default_rng(2)
    image, labels = make_nuclei_image((128, 128), rng)
    region = np.zeros(image.shape, bool)
    region[32:96, 32:96] = True
    other_image, other_labels = image.copy(), labels.copy()
    other_labels[~region] = 0  # unpainted nuclei outside the region
    other_image[~region] = other_image.max()

    def loss(img, lab):
        sampler = CropSampler(
            [AnnotatedImage("a", img, lab)],
            np.random.default_rng(0),
            patch=64,
            scale_range=(1.0, 1.0),
            regions=[region],
        )
        torch.manual_seed(0)
        net = CompactDeepLab(widths=(4, 8, 8, 8), aspp_channels=8).eval()
        x, target, weights = sampler.batch(2)
        logits = net(torch.zeros_like(x))  # the image cannot matter: zeros
        losses = torch.nn.functional.cross_entropy(logits, target, reduction="none")
        return float((losses * weights).sum().detach() / weights.sum()), weights

    a, wa = loss(image, labels)
    b, wb = loss(other_image, other_labels)
    assert a == pytest.approx(b, rel=1e-6)
    assert (wa > 0).any()


def test_default_region_is_the_painted_box_with_a_margin():
    labels = np.zeros((50, 60), np.uint8)
    labels[10:15, 20:30] = 1
    labels[30:33, 40:44] = 2
    region = default_region(labels, margin=5)
    rows, cols = np.nonzero(region)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (5, 37, 15, 48)
    assert not default_region(np.zeros((4, 4), np.uint8), 3).any()


def test_cancel_returns_nothing(pair):
    image, labels = pair
    with pytest.raises(FinetuneCancelled, match="at step 1") as cancelled:
        finetune([(image, labels)], steps=50, cancel=lambda: True)
    assert isinstance(cancelled.value, Cancelled)


@pytest.mark.parametrize(
    ("pairs", "options", "match"),
    [
        ([(np.zeros((32, 32)), np.zeros((32, 31), np.uint16))], {}, "differ in shape"),
        ([(np.zeros((32, 32)), np.zeros((32, 32), np.uint16))], {}, "labels are empty"),
        ([(np.zeros((32, 32, 3)), np.ones((32, 32), np.uint16))], {}, "2-D plane"),
        ([], {}, "at least one"),
        (
            [(np.zeros((32, 32)), np.ones((32, 32), np.uint16))],
            {"time_limit": 0},
            "time_limit",
        ),
        (
            [(np.zeros((32, 32)), np.ones((32, 32), np.uint16))],
            {"regions": [np.zeros((32, 32), bool)]},
            "holds no labelled nucleus",
        ),
        (
            [(np.zeros((32, 32)), np.ones((32, 32), np.uint16))],
            {"regions": [np.ones((10, 10), bool)]},
            "region .* differ",
        ),
    ],
)
def test_bad_input_is_a_clear_error(pairs, options, match):
    with pytest.raises(ValueError, match=match):
        finetune(pairs, **options)


def test_a_base_file_that_is_not_a_model(tmp_path, pair):
    from napari_pyramids.nn.weights import WeightsError

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nope")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        finetune([pair], base=str(bad), steps=1)
