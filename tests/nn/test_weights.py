import shutil

import pytest
import torch

from napari_pyramids.nn import REGISTRY, CompactDeepLab, WeightsError, load_model
from napari_pyramids.nn.weights import WEIGHTS_DIR, sha256_file


def test_shipped_weights_match_registry_and_load():
    entry = REGISTRY["nuclei"]
    path = WEIGHTS_DIR / entry.filename
    assert path.stat().st_size <= 10 * 2**20  # issue 5: weights at most 10 MB
    assert sha256_file(path) == entry.sha256
    model = load_model("nuclei")
    assert isinstance(model, CompactDeepLab) and not model.training


def test_tampered_file_fails_checksum(tmp_path):
    copy = tmp_path / "nuclei.safetensors"
    shutil.copy(WEIGHTS_DIR / REGISTRY["nuclei"].filename, copy)
    with open(copy, "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        load_model(copy, sha256=REGISTRY["nuclei"].sha256)


def test_pt_state_dict_loads_with_weights_only(tmp_path):
    model = CompactDeepLab(widths=(4, 4, 4, 8), aspp_channels=4)
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": model.state_dict(), "config": model.config}, path)
    loaded = load_model(path)
    x = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x))


class _Payload:
    """Unpickling it would create the file ``sentinel`` (code run on load)."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def test_pickled_code_is_never_run(tmp_path):
    path = tmp_path / "evil.pt"
    sentinel = tmp_path / "pwned"  # this test's own: no other run can leave it
    torch.save({"state_dict": _Payload(sentinel)}, path)
    with pytest.raises(WeightsError, match="weights_only"):
        load_model(path)
    assert not sentinel.exists()


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(WeightsError, match="not a state dict"):
        load_model(path)


def test_wrong_shapes_and_keys_are_named(tmp_path):
    state = CompactDeepLab().state_dict()
    state["backbone.stem.1.weight"] = torch.zeros(3, 3, 3, 3)
    del state["classifier.4.bias"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(
        WeightsError, match=r"missing keys.*classifier\.4\.bias.*shape mismatches.*stem"
    ):
        load_model(path)


def test_garbage_and_unknown(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError, match="safetensors"):
        load_model(path)
    with pytest.raises(FileNotFoundError, match="registered models"):
        load_model("no-such-model")
    other = tmp_path / "w.ckpt"
    other.write_bytes(b"x")
    with pytest.raises(WeightsError, match="format"):
        load_model(other)
