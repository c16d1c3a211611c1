"""What every napari-pyramids widget shares: run an action's job off the GUI thread.

A widget subclasses :class:`JobWidget`, builds its controls, and implements
:meth:`JobWidget.prepare`. ``prepare`` runs on the GUI thread: it reads layers
(through :mod:`napari_pyramids.layers`), builds the action's settings from the
controls and returns the action's :class:`~napari_pyramids.actions.Job`, whose
steps touch no napari object and return a
:class:`~napari_pyramids.actions.Result`. Because the job yields, Cancel works
between steps (napari's ``GeneratorWorker.quit`` takes effect at the next
``yield``).

The Run button turns into Cancel while a job runs and into "Cancelling..."
once asked; results are added only when a job finishes, so a cancelled or
failed run leaves the viewer as it was. Errors become napari notifications.
Layers whose names already exist are updated in place, so re-runs do not pile
layers up. Every control that stands for a setting shows that setting's help
text as its tooltip (:func:`explain`).
"""

from __future__ import annotations

import time

from magicgui.widgets import Container, Label, PushButton

from napari_pyramids.actions import (
    Job,
    Result,
    Step,
    choices_of,
    help_texts,
    run_to_completion,
)
from napari_pyramids.layers import add_layer_tuples


def explain(settings_type, **controls) -> None:
    """Give each control (by setting name) its setting's help text as tooltip."""
    texts = help_texts(settings_type)
    for name, control in controls.items():
        control.tooltip = texts[name]


def choices(settings_type, name: str) -> list[tuple[str, object]]:
    """A drop-down's ``(text, value)`` choices for option ``name`` of the settings."""
    return [(text, value) for value, text in choices_of(settings_type, name).items()]


class JobWidget(Container):
    """A magicgui Container with a Run/Cancel button that runs a :class:`Job`.

    Subclasses call ``super().__init__(viewer)``, add their input widgets with
    ``self.extend([...])``, then call ``self._finish()`` to append the Run button
    and the status line, and implement :meth:`prepare`.
    """

    run_label = "Run"

    def __init__(self, viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self._run_button = PushButton(text=self.run_label)
        self._run_button.changed.connect(self._on_run_clicked)
        self._status = Label(value="")
        self._status.native.setWordWrap(True)  # long messages must not widen the dock
        self._worker = None
        self._progress = None
        #: False once Qt has deleted this widget (its viewer was closed)
        self._alive = True
        self.native.destroyed.connect(self._on_destroyed)
        #: layers added by the last successful run (for scripts and tests)
        self.last_layers: list = []

    def _finish(self) -> None:
        self.extend([self._run_button, self._status])

    # ----------------------------------------------------------------- API
    def prepare(self) -> Job:
        """Read the inputs, validate them, and return the job to run."""
        raise NotImplementedError

    @property
    def worker(self):
        """The running napari worker, or None when idle."""
        return self._worker

    @property
    def status(self) -> str:
        return self._status.value

    def run(self, *, blocking: bool = False):
        """Start the job, as the Run button does.

        With ``blocking=True`` the job runs on the calling thread and the added
        layers are returned (console and scripts); errors are raised, not shown.
        Otherwise it runs in a napari thread worker and the worker is returned
        (None if the inputs were rejected, with a notification saying why).
        One job runs at a time: while one runs, this returns its worker (and
        ``blocking=True`` raises) instead of starting a second.
        """
        if self._worker is not None:
            if blocking:
                raise RuntimeError(
                    "a job is already running in this widget; wait for it to "
                    "finish or cancel it first"
                )
            return self._worker
        if blocking:
            job = self.prepare()
            return self._commit(job, run_to_completion(job))
        try:
            job = self.prepare()
        except (ValueError, TypeError, FileNotFoundError) as err:
            self._report_error(err)
            return None
        return self._start_worker(job)

    def cancel(self) -> None:
        """Ask a running job to stop at its next step; nothing will be added."""
        if self._worker is not None:
            self._worker.quit()
            if self._alive:
                self._run_button.text = "Cancelling…"
                self._run_button.enabled = False

    def _on_destroyed(self, *_) -> None:
        """Qt deleted the widget (its viewer closed): cancel, touch nothing more.

        The job's last signals still arrive afterwards; with ``_alive`` False
        they neither update the deleted button and label nor add layers.
        """
        self._alive = False
        self.cancel()

    # ------------------------------------------------------------ plumbing
    def _on_run_clicked(self, *_):
        if self._worker is not None:
            self.cancel()
        else:
            self.run()

    def _start_worker(self, job: Job):
        from napari.qt.threading import thread_worker
        from napari.utils import progress

        def steps():  # a generator function, so napari makes a cancellable worker
            return (yield from job)

        # ignore_errors: _report_error shows them; do not re-raise in the event loop
        worker = thread_worker(steps, start_thread=False, ignore_errors=True)()
        self._worker = worker
        pbar = progress(total=0, desc=job.description)
        self._progress = pbar
        self._run_button.text = "Cancel"
        self._set_status(f"{job.description}…")

        def on_step(step: Step):
            # Qt may deliver a last step after "aborted"/"finished": ignore it then.
            if worker.abort_requested or self._progress is not pbar:
                return
            pbar.total = step.total
            pbar.set_description(step.message or job.description)
            pbar.update(step.done - pbar.n)
            self._set_status(step.message)

        worker.yielded.connect(on_step)
        worker.returned.connect(lambda result: self._commit(job, result))
        worker.errored.connect(self._report_error)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        worker.start()
        return worker

    def _commit(self, job: Job, result: Result) -> list:
        if not self._alive:  # the viewer is gone: nothing to add the layers to
            return []
        layers = add_layer_tuples(self._viewer, result.layers)
        self.last_layers = layers
        elapsed = time.perf_counter() - job.started
        done = f"Done in {elapsed:.2f} s: {len(layers)} layer(s)."
        self._set_status(result.summary or done)
        return layers

    def _report_error(self, err: BaseException) -> None:
        from napari.utils.notifications import show_error

        self._set_status(f"Error: {err}")
        show_error(f"{type(self).__name__.removesuffix('Widget')}: {err}")

    def _on_aborted(self, *_) -> None:
        self._set_status("Cancelled: nothing was added.")

    def _set_status(self, text: str) -> None:
        if self._alive:
            self._status.value = text

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._worker = None
        if self._alive:
            self._run_button.text = self.run_label
            self._run_button.enabled = True
