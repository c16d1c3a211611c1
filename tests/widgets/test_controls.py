"""Controls made from the settings, and settings read back from the controls."""

import pytest
from magicgui.widgets import CheckBox, ComboBox, FloatRangeSlider, FloatSpinBox, SpinBox

from napari_pyramids.actions import help_texts
from napari_pyramids.actions.blend import METHODS, BlendSettings
from napari_pyramids.actions.search import SearchSettings
from napari_pyramids.actions.segment import SegmentSettings
from napari_pyramids.widgets._base import control
from napari_pyramids.widgets.blend import BlendWidget


def test_a_control_is_its_setting():
    tile = control(SegmentSettings, "tile_size")
    assert isinstance(tile, SpinBox) and tile.name == "tile_size"
    assert (tile.label, tile.min, tile.max, tile.step) == ("tile size", 128, 8192, 64)
    assert tile.value == SegmentSettings().tile_size
    assert tile.tooltip == help_texts(SegmentSettings)["tile_size"]
    box = control(SegmentSettings, "link")
    assert isinstance(box, CheckBox) and box.text == "link nuclei through time"
    assert box.value is False
    method = control(BlendSettings, "method")
    assert isinstance(method, ComboBox) and method.value == "pyramid"
    assert [method.native.itemText(i) for i in range(3)] == list(METHODS.values())
    # an optional number: its control's type, and a value where the default is None
    diameter = control(SegmentSettings, "diameter", value=30.0)
    assert isinstance(diameter, FloatSpinBox) and diameter.value == 30.0


def test_a_setting_no_control_fits_needs_a_widget_type():
    with pytest.raises(TypeError, match="'scales' needs a widget_type"):
        control(SearchSettings, "scales")
    scales = control(SearchSettings, "scales", FloatRangeSlider, value=(0.5, 2.0))
    assert scales.value == (0.5, 2.0) and scales.step == 0.05


def test_settings_are_read_from_the_controls_named_like_them(viewer):
    widget = BlendWidget(viewer)
    widget.method.value = "feather"
    widget.feather_width.value = 7.5
    widget.show_mask_octaves.value = True
    widget.auto_levels.value = False
    widget.levels.value = 3
    assert widget.settings() == BlendSettings(
        method="feather", levels=3, width=7.5, show_mask_octaves=True
    )
    # values given beat the controls (the "levels" box is read as it is here)
    given = widget.from_controls(BlendSettings, width=2.0)
    assert (given.width, given.levels, given.method) == (2.0, 3, "feather")


def test_settings_without_a_control_keep_their_defaults(viewer):
    from napari_pyramids.actions.pyramid import PyramidSettings
    from napari_pyramids.widgets.pyramid import PyramidWidget

    widget = PyramidWidget(viewer)
    widget.keep_dtype.value = False
    settings = widget.settings()
    assert not settings.keep_dtype and settings.min_size == PyramidSettings().min_size
