"""After a run the status line shows the result's summary, not a late progress step."""

import threading

import pytest

from napari_pyramids.actions import Job
from napari_pyramids.widgets.blend import BlendWidget
from napari_pyramids.widgets.pyramid import PyramidWidget
from napari_pyramids.widgets.search import SearchWidget
from napari_pyramids.widgets.segment import SegmentWidget


@pytest.mark.parametrize(
    "widget_type, sample, values, says",
    [
        (PyramidWidget, "astronaut", {}, "Done in"),
        (BlendWidget, "blend_pair", {}, "Done in"),
        (SearchWidget, "coins_search", {}, "exhaustive"),
        (SegmentWidget, "nuclei_2d", {"tile_size": 128}, "nuclei in"),  # tiles
    ],
)
def test_status_ends_on_the_summary(viewer, qtbot, widget_type, sample, values, says):
    viewer.open_sample("napari-pyramids", sample)
    widget = widget_type(viewer)
    for name, value in values.items():
        getattr(widget, name).value = value
    viewer.window.add_dock_widget(widget)  # napari's progress bar shows there
    summaries = []
    commit = widget._commit

    def record(job, result):
        layers = commit(job, result)
        summaries.append(widget.status)
        return layers

    widget._commit = record
    # The GUI thread waits, busy, until the job has returned: every step and the
    # result are then queued at once, as when a fast job meets a busy window.
    returned = threading.Event()
    prepare = widget.prepare

    def job_that_says_when_it_returned():
        job = prepare()

        def steps():
            try:
                return (yield from job)
            finally:
                returned.set()

        return Job(job.description, steps())

    widget.prepare = job_that_says_when_it_returned
    assert widget.run() is not None, widget.status
    assert returned.wait(120)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    qtbot.wait(200)  # any step still queued would arrive now
    assert len(summaries) == 1 and says in summaries[0]
    assert widget.status == summaries[0]
