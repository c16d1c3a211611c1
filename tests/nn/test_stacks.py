"""Stacks: one id per nucleus through z, ids kept through time when linked."""

import numpy as np
import pytest

from napari_pyramids.nn import load_model, segment
from napari_pyramids.nn.stacks import check_axes, link_ids
from napari_pyramids.nn.synthetic import make_nuclei_image


@pytest.fixture(scope="module")
def model():
    return load_model("nuclei")


@pytest.fixture(scope="module")
def plane():
    return make_nuclei_image((160, 192), np.random.default_rng(8))


def _same_ids(a, b):
    """Each nucleus of ``a`` carries one id of ``b`` and vice versa (a bijection)."""
    pairs = {(int(x), int(y)) for x, y in zip(a.ravel(), b.ravel()) if x and y}
    return len({x for x, _ in pairs}) == len({y for _, y in pairs}) == len(pairs)


def test_z_stack_gets_one_id_per_nucleus_through_z(model, plane):
    image, _ = plane
    rng = np.random.default_rng(0)
    stack = np.stack(
        [image * (0.8 + 0.1 * z) + rng.normal(0, 1, image.shape) for z in range(5)]
    ).astype(np.float32)
    labels = segment(stack, model, device="cpu")  # axes default: zyx
    assert labels.shape == stack.shape
    middle = labels[2]
    assert middle.max() > 10
    for z in (0, 1, 3, 4):  # the same nuclei keep the middle plane's ids
        shared = (labels[z] > 0) & (middle > 0)
        agree = np.mean(labels[z][shared] == middle[shared])
        assert agree > 0.97, z
    # an id never jumps between planes to another nucleus
    assert len(np.unique(labels)) - 1 < 1.2 * middle.max()


def test_time_lapse_keeps_ids_when_linked(model, plane):
    image, _ = plane
    frames = np.stack([np.roll(image, 3 * t, axis=1) for t in range(4)])
    linked = segment(frames, model, axes="tyx", link=True, device="cpu")
    apart = segment(frames, model, axes="tyx", device="cpu")
    first = linked[0][:, 12:-12]
    ids = [i for i in np.unique(first) if i]
    for t in range(1, 4):
        back = np.roll(linked[t], -3 * t, axis=1)[:, 12:-12]
        # most nuclei of frame 0 carry their id in frame t (by majority)
        kept = [
            np.bincount(back[first == i]).argmax() == i
            for i in ids
            if (back[first == i] > 0).any()
        ]
        assert np.mean(kept) > 0.85, t  # the rest: split or merged anew
    # without linking each frame numbers its own nuclei from 1
    assert all(apart[t].max() <= apart[t][apart[t] > 0].size for t in range(4))
    assert {int(apart[t][apart[t] > 0].min()) for t in range(4)} == {1}


def test_link_ids_is_one_to_one_and_leaves_the_input():
    stack = np.zeros((2, 10, 10), np.uint16)
    stack[0, 1:5, 1:5] = 1
    stack[1, 1:5, 1:9] = 7  # one nucleus over frame 0's one and more: IoU 0.5
    stack[1, 7:9, 7:9] = 3  # new
    before = stack.copy()
    out = link_ids(stack, 0.25)
    np.testing.assert_array_equal(stack, before)
    assert out[1, 2, 2] == out[0, 2, 2] == 1 and out[1, 8, 8] == 2
    assert out.dtype == np.uint32
    with pytest.raises(ValueError, match="threshold"):
        link_ids(stack, 0)


@pytest.mark.parametrize(
    ("axes", "ndim", "match"),
    [("zyx", 2, "names 3 dimensions"), ("xyz", 3, "must be one of"), (None, 4, "tzyx")],
)
def test_bad_axes(axes, ndim, match):
    with pytest.raises(ValueError, match=match):
        check_axes(axes, ndim)
