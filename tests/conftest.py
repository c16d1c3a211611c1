"""Test-wide settings.

Widget tests need an OpenGL canvas. Under a display (``xvfb-run``, as the
Makefile runs the suite) Qt uses it; without one, Qt falls back to the
offscreen platform, which suffices for everything but the canvas.
"""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def user_models_dir(tmp_path, monkeypatch):
    """Models trained in a test are saved to its own folder, never the user's."""
    folder = tmp_path / "user-models"
    monkeypatch.setenv("NAPARI_PYRAMIDS_MODELS", str(folder))
    return folder
