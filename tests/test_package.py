"""Packaging promises: a light import, a valid manifest whose commands all resolve."""

import importlib
import subprocess
import sys
from pathlib import Path

import npe2

ROOT = Path(__file__).resolve().parents[1]


def test_import_loads_neither_torch_nor_qt_nor_napari():
    code = (
        "import sys, napari_pyramids;"
        "heavy = [m for m in ('torch', 'qtpy', 'PyQt6', 'napari', 'dask', 'zarr')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_numpy_only_nn_modules_load_no_torch():
    code = (
        "import sys, napari_pyramids.nn.synthetic, napari_pyramids.nn.data,"
        " napari_pyramids.nn.metrics, napari_pyramids.nn.defaults,"
        " napari_pyramids.nn.rescale;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_manifest_is_valid_and_every_command_resolves():
    manifest = npe2.PluginManifest.from_file(ROOT / "napari.yaml")
    assert manifest.name == "napari-pyramids"
    for command in manifest.contributions.commands:
        module, _, qualname = command.python_name.partition(":")
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        assert callable(obj), command.id


def test_packaged_manifest_is_the_root_one():
    import napari_pyramids

    packaged = Path(napari_pyramids.__file__).with_name("napari.yaml")
    assert packaged.read_text() == (ROOT / "napari.yaml").read_text()


def test_public_api_names():
    import napari_pyramids as npp

    for name in [
        "gaussian_pyramid",
        "laplacian_pyramid",
        "reconstruct",
        "reduce",
        "expand",
        "equal_size_levels",
        "add_pyramid",
        "segment",
        "load_model",
        "save_model",
        "estimate_diameter",
    ]:
        assert callable(getattr(npp, name)), name
    assert npp.nn.ASPP.__name__ == "ASPP"
    assert {"segment", "load_model", "nn"} <= set(dir(npp))


def test_segment_from_the_console():
    import numpy as np

    import napari_pyramids as npp

    image = np.zeros((64, 64), np.float32)
    image[20:30, 20:32] = 1.0
    before = image.copy()
    labels = npp.segment(image, device="cpu")
    assert labels.shape == image.shape and labels.dtype == np.uint8
    assert labels[25, 26] > 0 and labels[0, 0] == 0
    np.testing.assert_array_equal(image, before)
