"""Bad weights files and arguments get a WeightsError naming the file (issue 17)."""

import json

import pytest
from safetensors.torch import save_file

from napari_pyramids.nn import CompactDeepLab, WeightsError, load_model


@pytest.fixture
def small_state():
    model = CompactDeepLab(widths=(4, 4, 4, 8), aspp_channels=4)
    return {k: v.contiguous() for k, v in model.state_dict().items()}, model.config


def test_a_config_that_is_not_json(tmp_path, small_state):
    state, _ = small_state
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path), metadata={"config": "{widths: (4, 4"})
    with pytest.raises(WeightsError, match=r"bad\.safetensors.*config.*not JSON"):
        load_model(path)


def test_absurd_widths_are_refused_before_anything_is_allocated(tmp_path, small_state):
    state, config = small_state
    path = tmp_path / "huge.safetensors"
    huge = {**config, "widths": [600_000, 600_000, 600_000, 600_000]}
    save_file(state, str(path), metadata={"config": json.dumps(huge)})
    with pytest.raises(WeightsError, match=r"huge\.safetensors.*does not fit"):
        load_model(path)  # used to ask torch for 1.44 TB


@pytest.mark.parametrize("bad", [123, "xyz", "ab" * 40])
def test_a_sha256_that_is_not_64_hex_digits(tmp_path, small_state, bad):
    state, config = small_state
    path = tmp_path / "ok.safetensors"
    save_file(state, str(path), metadata={"config": json.dumps(config)})
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        load_model(path, sha256=bad)
