"""Every control that stands for a setting shows that setting's help as tooltip."""

import pytest

from napari_pyramids.actions import help_texts
from napari_pyramids.actions.blend import BlendSettings
from napari_pyramids.actions.pyramid import PyramidSettings
from napari_pyramids.actions.search import SearchSettings
from napari_pyramids.actions.segment import SegmentSettings
from napari_pyramids.actions.train import TrainSettings
from napari_pyramids.widgets.blend import BlendWidget
from napari_pyramids.widgets.pyramid import PyramidWidget
from napari_pyramids.widgets.search import SearchWidget
from napari_pyramids.widgets.segment import SegmentWidget
from napari_pyramids.widgets.train import TrainWidget


@pytest.mark.parametrize(
    "widget_type, settings_type, controls, api_only",
    [
        (
            PyramidWidget,
            PyramidSettings,
            {"kind": "kind", "levels": "levels", "output": "output"},
            {"min_size"},  # the widget's "all octaves" uses the default
        ),
        (
            BlendWidget,
            BlendSettings,
            {"method": "method", "feather_width": "width"},
            set(),
        ),
        (
            SearchWidget,
            SearchSettings,
            {"min_score": "min_score", "compare": "compare_exhaustive"},
            set(),
        ),
        (
            SegmentWidget,
            SegmentSettings,
            {"threshold": "threshold", "diameter": "diameter", "axes": "axes"},
            set(),
        ),
        (
            TrainWidget,
            TrainSettings,
            {"model_name": "name", "save_to": "path"},
            set(),
        ),
    ],
)
def test_tooltips_come_from_the_settings(
    viewer, widget_type, settings_type, controls, api_only
):
    widget = widget_type(viewer)
    texts = help_texts(settings_type)
    for control, field in controls.items():
        assert getattr(widget, control).tooltip == texts[field], control
    shown = {c.tooltip for c in widget if c.tooltip}
    missing = [
        name
        for name, text in texts.items()
        if text not in shown and name not in api_only
    ]
    assert missing == [], f"settings without a control showing their help: {missing}"
