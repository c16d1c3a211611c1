import numpy as np
import torch

from napari_pyramids.nn import load_model
from napari_pyramids.nn.synthetic import classes_from_labels, make_nuclei_image
from napari_pyramids.nn.train import save, train


def test_training_smoke_and_save_load_round_trip(tmp_path):
    model = train(steps=3, batch_size=2, patch=64, pool_size=2, log_every=100)
    path = tmp_path / "m.safetensors"
    save(model, path, seed=0, steps=3)
    loaded = load_model(path)
    x = torch.rand(1, 1, 48, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_synthetic_is_seeded_and_boundaries_split_touching_nuclei():
    a, la = make_nuclei_image((96, 96), 5)
    b, lb = make_nuclei_image((96, 96), 5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    labels = np.zeros((20, 20), np.int32)
    labels[5:15, 2:10], labels[5:15, 10:18] = 1, 2
    classes = classes_from_labels(labels)
    # the touching line is boundary
    assert list(classes[10, 7:13]) == [1, 1, 2, 2, 1, 1]
    assert (classes[7:13, 4:8] == 1).all()
    wide = classes_from_labels(labels, boundary_width=2)
    assert list(wide[10, :12]) == [0, 0, 2, 2, 1, 1, 1, 1, 2, 2, 2, 2]
    assert list(wide[:9, 5]) == [0, 0, 0, 0, 0, 2, 2, 1, 1]
    assert (wide[labels == 0] == 0).all()  # the rim never leaves the nuclei


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
