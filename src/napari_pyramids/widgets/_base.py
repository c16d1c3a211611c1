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
layers up. A control that stands for a setting is made from that setting
(:func:`control`: its label, default, range and help text as tooltip) and
read back into the settings by name (:meth:`JobWidget.from_controls`).

Layer drop-downs start on sensible layers and follow the viewer: as napari's
own layer pickers and most plugins do, each picks the most recent layer of the
type it needs (:func:`pick_layer`) that is not one of the plugin's results
(:func:`~napari_pyramids.layers.is_result`), re-picked whenever layers are
added or removed, until the user chooses one by hand.
"""

from __future__ import annotations

import dataclasses
import time
import types
import typing

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    create_widget,
)
from qtpy.QtCore import QEvent, QObject, QTimer

from napari_pyramids.actions import (
    Job,
    Result,
    Step,
    choices_of,
    field_of,
    run_to_completion,
)
from napari_pyramids.core.pyramid import DEFAULT_MIN_SIZE
from napari_pyramids.layers import (
    add_layer_tuples,
    is_result,
    layer_kind,
    source_from_layer,
)

#: The control for a setting of each type (options get a drop-down).
CONTROL_TYPES = {bool: CheckBox, int: SpinBox, float: FloatSpinBox, str: LineEdit}


def control(settings_type, name: str, widget_type=None, **options):
    """The control of setting ``name``: named like it, its value the default.

    Its label, range (``min``, ``max``) and ``step`` are the setting's, its
    tooltip the setting's help; an option with choices is a drop-down. The
    type follows the setting's (:data:`CONTROL_TYPES`) unless ``widget_type``
    is given, and ``options`` (magicgui's) override any of the above.
    """
    setting = field_of(settings_type, name)
    meta = setting.metadata
    derived = {"name": name, "tooltip": meta["help"], "label": meta.get("label")}
    if "limits" in meta:
        derived["min"], derived["max"] = meta["limits"]
    if "step" in meta:
        derived["step"] = meta["step"]
    if setting.default is not None:
        derived["value"] = setting.default
    if "choices" in meta:
        derived["choices"] = choices(settings_type, name)
    kind = widget_type or (ComboBox if "choices" in meta else None)
    kind = kind or CONTROL_TYPES.get(_value_type(settings_type, name))
    if kind is None:
        raise TypeError(f"{name!r} needs a widget_type: no control fits its type")
    return kind(**{**derived, **options})


def _value_type(settings_type, name: str):
    """The type of setting ``name``, less an optional ``| None``."""
    hint = typing.get_type_hints(settings_type)[name]
    if isinstance(hint, types.UnionType):
        kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)]
        hint = kinds[0] if len(kinds) == 1 else hint
    return hint


def levels_controls(settings_type, **options) -> tuple[CheckBox, SpinBox]:
    """An "all octaves" box and the ``levels`` control it stands in for.

    With the box ticked the settings get ``levels=None`` (every octave down
    to :data:`~napari_pyramids.core.pyramid.DEFAULT_MIN_SIZE` pixels).
    """
    levels = control(settings_type, "levels", **options)
    auto = CheckBox(
        text=f"all octaves down to {DEFAULT_MIN_SIZE} px",
        value=True,
        tooltip=levels.tooltip,
    )
    return auto, levels


def layer_picker(kind: str, label: str, tooltip: str, **options):
    """A drop-down of the viewer's layers of ``kind`` ("image", "labels",
    "shapes"), with its tooltip; ``nullable=True`` also offers no layer."""
    from napari import layers

    layer_type = getattr(layers, kind.capitalize())
    if options.get("nullable"):
        layer_type = layer_type | None
    return create_widget(
        annotation=layer_type, label=label, options={"tooltip": tooltip, **options}
    )


def live_choices(function, *args):
    """A drop-down's choices as ``function(*args)``, asked again at every refresh
    (napari refreshes them when layers come and go, and on ``reset_choices``)."""
    return lambda *_: function(*args)


def layer_choices(layers, kinds) -> list[tuple[str, object]]:
    """``(text, layer)`` drop-down choices: the layers of each of ``kinds`` in
    turn (the first kind first), each named with its kind."""
    return [
        (f"{layer.name} ({kind})", layer)
        for kind in kinds
        for layer in layers
        if layer_kind(layer) == kind
    ]


def choices(settings_type, name: str) -> list[tuple[str, object]]:
    """A drop-down's ``(text, value)`` choices for option ``name`` of the settings."""
    return [(text, value) for value, text in choices_of(settings_type, name).items()]


def offer(combo, choices: list, value) -> None:
    """Give a drop-down new ``choices`` and then ``value``; one that has these
    choices already keeps its value (the user's pick)."""
    if list(combo.choices) != list(choices):
        combo.choices = choices
        combo.value = value


def pick_layer(layers, kinds, *, avoid=(), where=None):
    """The most recent layer of the first of ``kinds`` that has one, or None.

    ``layers`` are in the viewer's order (the last added is the last and the
    topmost); layers in ``avoid`` are passed over unless nothing else fits,
    and only layers for which ``where(layer)`` is true are taken (when given).
    """
    for kind in kinds:
        fits = [
            layer
            for layer in reversed(list(layers))
            if layer_kind(layer) == kind and (where is None or where(layer))
        ]
        fresh = [layer for layer in fits if not any(layer is a for a in avoid)]
        if fresh or fits:
            return (fresh or fits)[0]
    return None


class _RefitWhenShown(QObject):
    """Fit the viewer's view to its layers once the widget is first shown.

    Docking a widget narrows the canvas while napari keeps the zoom, which
    cuts the image off; once the dock's layout has settled (the next turn of
    the event loop) the view is fit again, as napari does when a layer is
    first added. Later shows keep the view the user has chosen.
    """

    def __init__(self, widget, viewer):
        super().__init__(widget)
        self._viewer = viewer
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Show:
            obj.removeEventFilter(self)
            QTimer.singleShot(0, self._viewer.reset_view)
        return False


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
        self._run_button = PushButton(
            text=self.run_label,
            tooltip="run with these choices, off the GUI thread; while it runs "
            "this button cancels (nothing is added)",
        )
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
        #: per layer control, the layer it was last set to automatically
        self._picked: dict = {}
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        self._refit = _RefitWhenShown(self.native, viewer)

    def _finish(self) -> None:
        self.extend([self._run_button, self._status])
        self.reset_choices()

    # ------------------------------------------------------- layer defaults
    def layer_defaults(self) -> list:
        """``(control, choose)`` pairs: ``choose()`` gives the control's default.

        They are applied in order, so a later ``choose`` sees the earlier
        controls' new values (image B avoids image A). By default a widget's
        ``image`` control takes the latest image layer (the one just opened).
        """
        image = getattr(self, "image", None)
        if image is None:
            return []
        return [(image, lambda: pick_layer(self.input_layers(), ["image"]))]

    def source_of(self, picker):
        """The :class:`~napari_pyramids.layers.Source` of the layer ``picker``
        shows, or None while there is none (or it is empty: Run will say so)."""
        try:
            return source_from_layer(picker.value)
        except (TypeError, ValueError):
            return None

    def from_controls(self, settings_type, **values):
        """``settings_type`` from the controls named like its fields and ``values``.

        ``values`` holds the settings a control does not give as they are
        (a choice that means None, a unit to convert); fields with neither
        keep their defaults.
        """
        names = {f.name for f in dataclasses.fields(settings_type)} - set(values)
        read = {c.name: c.value for c in self if c.name in names}
        return settings_type(**read, **values)

    def save_button(self, what: str, file_type: str, save, tooltip: str):
        """A "save ``what`` (``file_type``)…" button: asks for a file, calls
        ``save(path)`` (which returns the path written) and says where.

        A ValueError or OSError from ``save`` becomes a notification.
        """
        button = PushButton(text=f"save {what} ({file_type})…", tooltip=tooltip)

        def ask(*_):
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(
                self.native,
                f"Save {what}",
                f"{what}.{file_type.lower()}",
                f"{file_type} (*.{file_type.lower()})",
            )
            if not path:
                return
            try:
                self._set_status(f"{what.capitalize()} saved to {save(path)}")
            except (ValueError, OSError) as err:
                self._report_error(err)

        button.changed.connect(ask)
        return button

    def input_layers(self) -> list:
        """The viewer's layers less the plugin's results (which stay choosable)."""
        return [layer for layer in self._viewer.layers if not is_result(layer)]

    def reset_choices(self, *_) -> None:
        """Refresh the drop-downs, then re-pick the layers not chosen by hand."""
        super().reset_choices()
        layers = list(self._viewer.layers)
        for control, choose in self.layer_defaults():
            picked = self._picked.get(control)
            by_hand = any(picked is layer for layer in layers) and (
                control.value is not picked
            )
            if by_hand:
                continue
            layer = choose()
            if layer is not None and any(layer is c for c in control.choices):
                control.value = layer
                self._picked[control] = layer

    def _on_layers_changed(self, *_) -> None:
        if self._alive:
            self.reset_choices()

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
        self._viewer.layers.events.inserted.disconnect(self._on_layers_changed)
        self._viewer.layers.events.removed.disconnect(self._on_layers_changed)
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

        returned = []

        def on_step(step: Step):
            # Qt may deliver a last step after "aborted"/"finished": ignore it then.
            if worker.abort_requested or self._progress is not pbar or returned:
                return
            # The status first: napari's progress bar runs the event loop, which
            # delivers the next steps, and the result, inside ``update``.
            self._set_status(step.message)
            pbar.total = step.total
            pbar.set_description(step.message or job.description)
            pbar.update(step.done - pbar.n)

        def on_returned(result: Result):
            returned.append(result)
            self._commit(job, result)

        worker.yielded.connect(on_step)
        worker.returned.connect(on_returned)
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
