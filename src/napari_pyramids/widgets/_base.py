"""What every napari-pyramids widget shares: run a job off the GUI thread.

A widget subclasses :class:`JobWidget`, builds its inputs, and implements
:meth:`JobWidget.prepare`. ``prepare`` runs on the GUI thread: it reads layers
(through :mod:`napari_pyramids.layers`), validates every setting and returns a
:class:`Job`. The job is a generator function that touches no napari object: it
yields :class:`Step` items (one per octave, tile or search level) and returns
the LayerDataTuples to add. Because it yields, Cancel works between steps
(napari's ``GeneratorWorker.quit`` takes effect at the next ``yield``).

The Run button turns into Cancel while a job runs and into "Cancelling..."
once asked; results are added only when a job finishes, so a cancelled or
failed run leaves the viewer as it was. Errors become napari notifications.
Layers whose names already exist are updated in place, so re-runs do not pile
layers up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from magicgui.widgets import Container, Label, PushButton

from napari_pyramids.layers import LayerDataTuple
from napari_pyramids.progress import drain


@dataclass(frozen=True)
class Step:
    """Progress of a running job: ``done`` of ``total`` steps, and what is happening."""

    done: int
    total: int
    message: str = ""


JobGenerator = Generator[Step, None, list[LayerDataTuple]]


@dataclass
class Job:
    """A unit of work prepared on the GUI thread, run anywhere.

    ``run`` must not touch napari or Qt objects; ``description`` titles the
    progress bar; ``on_done`` (optional) runs on the GUI thread with the layer
    tuples and returns a status message (time taken, scores, ...).
    """

    run: Callable[[], JobGenerator]
    description: str
    on_done: Callable[[list[LayerDataTuple]], str] | None = None
    started: float = field(default_factory=time.perf_counter)


def run_to_completion(job: Job, progress: Callable[[Step], None] | None = None):
    """Run a job on the calling thread (console, scripts, tests); return its layers."""
    return drain(job.run(), progress) or []


def add_layer_tuples(viewer, tuples: list[LayerDataTuple]) -> list:
    """Add layer tuples to ``viewer``, updating same-named layers in place.

    An Image or Labels layer is reused when its name and type match and it can
    hold the new data (same dimensions, rgb-ness and multiscale-ness); other
    layers (Points, Shapes carry per-item properties) are replaced at their index.
    Returns the layers, in order.
    """
    from napari.layers import Layer

    layers = []
    for data, meta, layer_type in tuples:
        meta = dict(meta)
        name = meta.get("name")
        old = viewer.layers[name] if name in viewer.layers else None  # noqa: SIM401
        new = Layer.create(data, meta, layer_type)
        if old is not None and _can_update(old, new):
            old.data = new.data
            for key in (
                "scale",
                "translate",
                "contrast_limits",
                "colormap",
                "metadata",
                "features",
            ):
                if key in meta:
                    setattr(old, key, meta[key])
            layers.append(old)
            continue
        if old is not None:
            index = viewer.layers.index(old)
            viewer.layers.remove(old)
            viewer.layers.insert(index, new)
        else:
            viewer.add_layer(new)
        layers.append(new)
    return layers


def _can_update(old, new) -> bool:
    if type(old) is not type(new) or old.ndim != new.ndim:
        return False
    same_image_kind = getattr(old, "rgb", None) == getattr(
        new, "rgb", None
    ) and getattr(old, "multiscale", None) == getattr(new, "multiscale", None)
    return same_image_kind and old._type_string not in ("points", "shapes")


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
            return (yield from job.run())

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
        worker.returned.connect(lambda tuples: self._commit(job, tuples or []))
        worker.errored.connect(self._report_error)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        worker.start()
        return worker

    def _commit(self, job: Job, tuples: list[LayerDataTuple]) -> list:
        if not self._alive:  # the viewer is gone: nothing to add the layers to
            return []
        layers = add_layer_tuples(self._viewer, tuples)
        self.last_layers = layers
        elapsed = time.perf_counter() - job.started
        message = job.on_done(tuples) if job.on_done else ""
        self._set_status(message or f"Done in {elapsed:.2f} s: {len(layers)} layer(s).")
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
