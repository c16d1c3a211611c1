"""Fixtures for the widget tests: a real napari viewer."""

import pytest


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()
