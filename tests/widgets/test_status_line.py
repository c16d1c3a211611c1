"""After a run the status line shows the result's summary, not a late progress step."""

import pytest

from napari_pyramids.widgets.blend import BlendWidget
from napari_pyramids.widgets.pyramid import PyramidWidget
from napari_pyramids.widgets.search import SearchWidget
from napari_pyramids.widgets.segment import SegmentWidget
from widget_helpers import run_widget


@pytest.mark.parametrize(
    "widget_type, sample, says",
    [
        (PyramidWidget, "astronaut", "Done in"),
        (BlendWidget, "blend_pair", "Done in"),
        (SearchWidget, "coins_search", "exhaustive"),
        (SegmentWidget, "nuclei_2d", "nuclei in"),
    ],
)
def test_status_ends_on_the_summary(viewer, qtbot, widget_type, sample, says):
    viewer.open_sample("napari-pyramids", sample)
    widget = widget_type(viewer)
    viewer.window.add_dock_widget(widget)  # napari's progress bar shows there
    summaries = []
    commit = widget._commit

    def record(job, result):
        layers = commit(job, result)
        summaries.append(widget.status)
        return layers

    widget._commit = record
    run_widget(qtbot, widget, timeout=120_000)
    qtbot.wait(200)  # any step still queued would arrive now
    assert len(summaries) == 1 and says in summaries[0]
    assert widget.status == summaries[0]
