"""Helpers for the widget tests: run-and-wait and cancel between two steps."""

import threading

from napari_pyramids.actions import Job


def run_widget(qtbot, widget, timeout: int = 30_000):
    """Click Run and wait until the worker is done; return the layers it added.

    Waits on the widget, not on ``worker.finished``: a fast job may finish
    before a signal spy could connect.
    """
    assert widget.run() is not None, widget.status
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)
    return widget.last_layers


def cancel_after_first_step(
    qtbot, widget, first_status: str, *, steps: int = 1
) -> None:
    """Run the widget's job, press Cancel after its first ``steps`` steps, wait.

    The job is paused there (as if it were slow) until Cancel has been pressed,
    so the cancel lands between two steps every time; ``first_status`` is the
    status line that shows the pause has been reached.
    """
    real_job = widget.prepare()
    resume = threading.Event()

    def paused_run():
        job_steps = iter(real_job)
        try:
            for _ in range(steps):
                yield next(job_steps)
            resume.wait(10)  # the user clicks Cancel here
            return (yield from job_steps)
        finally:  # cancelled while paused: the real job is closed too
            job_steps.close()

    widget.prepare = lambda: Job(real_job.description, paused_run())
    assert widget.run() is not None
    assert widget._run_button.text == "Cancel"
    qtbot.waitUntil(lambda: widget.status.startswith(first_status), timeout=10_000)
    widget.cancel()
    assert widget._run_button.text == "Cancelling…"
    resume.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert widget._run_button.text == widget.run_label
    assert "Cancelled" in widget.status
