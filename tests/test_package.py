"""Packaging promises: a light import, a valid manifest whose commands all resolve."""

import importlib
import importlib.metadata
import importlib.resources
import subprocess
import sys
from pathlib import Path

import npe2

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after ``statement``."""
    code = (
        f"import sys; {statement}; "
        f"print(','.join(m for m in {modules!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return [m for m in out.stdout.strip().split(",") if m]


GUI = ("magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari")


def test_console_module_loads_no_gui():
    """``add_pyramid`` runs the Pyramid action, not the widget: no magicgui, no Qt."""
    assert _loaded_after("import napari_pyramids.console", GUI) == []


def test_actions_load_neither_torch_nor_gui():
    statement = (
        "import napari_pyramids.actions.pyramid, napari_pyramids.actions.blend,"
        " napari_pyramids.actions.search, napari_pyramids.actions.segment,"
        " napari_pyramids.actions.train"
    )
    assert _loaded_after(statement, ("torch", *GUI)) == []


def test_import_loads_neither_torch_nor_qt_nor_napari():
    heavy = ("torch", "qtpy", "PyQt6", "napari", "dask", "zarr")
    assert _loaded_after("import napari_pyramids", heavy) == []


def test_numpy_only_nn_modules_load_no_torch():
    statement = (
        "import napari_pyramids.nn.synthetic, napari_pyramids.nn.data,"
        " napari_pyramids.nn.metrics, napari_pyramids.nn.defaults,"
        " napari_pyramids.nn.rescale, napari_pyramids.nn.user_models"
    )
    assert _loaded_after(statement, ("torch",)) == []


MANIFEST = ROOT / "src" / "napari_pyramids" / "napari.yaml"


def test_manifest_is_valid_and_every_command_resolves():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "napari-pyramids"
    for command in manifest.contributions.commands:
        module, _, qualname = command.python_name.partition(":")
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        assert callable(obj), command.id


def test_the_entry_point_names_the_packaged_manifest():
    """napari finds the manifest as package data of napari_pyramids: a plain file
    (no link, which Windows checkouts lose), which a wheel carries as any
    package file, and the one the installed entry point names."""
    (entry,) = importlib.metadata.entry_points(
        group="napari.manifest", name="napari-pyramids"
    )
    assert entry.value == "napari_pyramids:napari.yaml"
    package, _, name = entry.value.partition(":")
    packaged = importlib.resources.files(package) / name
    assert packaged.is_file() and not MANIFEST.is_symlink()
    assert Path(str(packaged)) == MANIFEST
    assert npe2.PluginManifest.from_file(packaged).name == "napari-pyramids"


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
