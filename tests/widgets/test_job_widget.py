"""JobWidget, the base of every widget: one job at a time, and a viewer closed
mid-job is an ordinary cancel (issue 17 item 7)."""

import threading

import numpy as np

from napari_pyramids.actions import Job, Result, Step
from napari_pyramids.widgets._base import JobWidget


class _SlowWidget(JobWidget):
    """A widget whose job waits at its first step until told to go on."""

    def __init__(self, viewer):
        super().__init__(viewer)
        self.go_on = threading.Event()
        self.started = 0
        self._finish()

    def prepare(self) -> Job:
        def run():
            self.started += 1
            yield Step(1, 2, "first step")
            self.go_on.wait(10)
            yield Step(2, 2, "second step")
            return Result([(np.zeros((4, 4)), {"name": "slow result"}, "image")])

        return Job("slow job", run())


def test_a_second_run_while_one_runs_starts_no_second_worker(viewer, qtbot):
    widget = _SlowWidget(viewer)
    viewer.window.add_dock_widget(widget)
    first = widget.run()
    qtbot.waitUntil(lambda: widget.status == "first step", timeout=10_000)
    assert widget.run() is first  # the running one, not a new one
    assert widget._run_button.text == "Cancel"
    widget.go_on.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=10_000)
    assert widget.started == 1
    assert [layer.name for layer in viewer.layers] == ["slow result"]


def test_closing_the_viewer_mid_job_is_a_quiet_cancel(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _SlowWidget(viewer)
    viewer.window.add_dock_widget(widget)
    worker = widget.run()
    qtbot.waitUntil(lambda: widget.status == "first step", timeout=10_000)
    finished = threading.Event()
    worker.finished.connect(finished.set)
    viewer.close()  # deletes the widget's Qt objects while the job still runs
    widget.go_on.set()
    qtbot.waitUntil(finished.is_set, timeout=10_000)
    qtbot.wait(50)  # let any late signal arrive: none may raise
    assert worker.abort_requested
