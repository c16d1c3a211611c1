"""The pieces every action shares: settings fields, steps, results and jobs."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from napari_pyramids.layers import LayerDataTuple
from napari_pyramids.progress import drain


def setting(
    default: Any,
    help: str,
    *,
    choices: dict | None = None,
    label: str | None = None,
    limits: tuple[float, float] | None = None,
    step: float | None = None,
) -> Any:
    """A settings field: its default, its help text and, for an option, its choices.

    ``help`` says what the setting does in a sentence a user understands (the
    widget shows it as the control's tooltip); ``choices`` maps each allowed
    value to the words a drop-down shows for it, and :class:`Settings` refuses
    any other value. ``label`` names the setting in a few words (a control's
    label), ``limits`` and ``step`` are the range a control offers and its
    increment: a hint for a GUI, not a check (scripts may go beyond it).
    """
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = dict(choices)
    hints = {"label": label, "limits": limits, "step": step}
    metadata.update({key: value for key, value in hints.items() if value is not None})
    return field(default=default, metadata=metadata)


class Settings:
    """Base of the frozen settings dataclasses: checks each option's choices.

    Subclasses add their own checks in ``check()``; both run when an instance
    is made, so settings that exist are valid whatever the source.
    """

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices is not None and value not in choices:
                raise ValueError(
                    f"{f.name} must be one of {tuple(choices)}, got {value!r}"
                )
        self.check()

    def check(self) -> None:
        """Checks beyond the choices (ranges, combinations); none by default."""


def help_texts(settings_type) -> dict[str, str]:
    """Each field's help text, by field name (the widgets' tooltips)."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(settings_type)}


def field_of(settings_type, name: str) -> dataclasses.Field:
    """The dataclass field of setting ``name`` (its default and metadata)."""
    fields = {f.name: f for f in dataclasses.fields(settings_type)}
    if name not in fields:
        raise KeyError(f"{settings_type.__name__} has no setting {name!r}")
    return fields[name]


def choices_of(settings_type, name: str) -> dict:
    """The allowed values of option ``name`` and the words shown for each."""
    return field_of(settings_type, name).metadata["choices"]


@dataclass(frozen=True)
class Step:
    """Progress of a running job: ``done`` of ``total`` steps, and what is happening."""

    done: int
    total: int
    message: str = ""


@dataclass(frozen=True)
class Result:
    """What an action made: the layers to add and the status line that says how.

    ``summary`` is empty where the time taken says enough (the widget then
    reports the time and the number of layers).
    """

    layers: list[LayerDataTuple]
    summary: str = ""


Steps = Generator[Step, None, Result]


@dataclass
class Job:
    """A checked action, ready to run on any thread: ``result = yield from job``.

    ``steps`` must not touch napari or Qt objects; ``description`` titles the
    progress bar. A job runs once.
    """

    description: str
    steps: Steps
    started: float = field(default_factory=time.perf_counter)

    def __iter__(self) -> Steps:
        return (yield from self.steps)


def run_to_completion(
    job: Job, progress: Callable[[Step], None] | None = None
) -> Result:
    """Run a job on the calling thread (console, scripts, tests); return its result."""
    return drain(iter(job), progress)
