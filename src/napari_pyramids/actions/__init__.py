"""What each widget does, without a GUI: settings in, progress steps, a result out.

One module per widget (:mod:`.pyramid`, :mod:`.blend`, :mod:`.search`,
:mod:`.segment`, :mod:`.train`), each with

* a frozen settings dataclass that owns the defaults, their validation and
  their help text (``dataclasses.fields(...)[i].metadata["help"]``, which the
  widgets show as tooltips), importable without torch or Qt;
* ``run(source, settings) -> Job``: every input is checked at once (bad
  input raises here, on the caller's thread), and the :class:`Job` yields
  :class:`Step` items as it works and returns a :class:`Result` carrying the
  layer data and the status line (``result = yield from job``).

The widgets, :mod:`napari_pyramids.console`, scripts and tests call the same
actions; :func:`run_to_completion` runs one on the calling thread.
"""

from napari_pyramids.actions.base import (
    Job,
    Result,
    Settings,
    Step,
    choices_of,
    field_of,
    help_texts,
    run_to_completion,
    setting,
)

__all__ = [
    "Job",
    "Result",
    "Settings",
    "Step",
    "choices_of",
    "field_of",
    "help_texts",
    "run_to_completion",
    "setting",
]
