"""Fixtures for the widget tests: a real napari viewer, isolated settings."""

import pytest


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture(autouse=True)
def plugin_settings_dir(tmp_path, monkeypatch):
    """Plugin settings are read from and saved to this test's own folder."""
    from napari import settings

    settings._clear_plugin_settings_cache()
    monkeypatch.setattr(settings, "_CFG_PATH", str(tmp_path / "settings.yaml"))
    yield tmp_path
    settings._clear_plugin_settings_cache()
