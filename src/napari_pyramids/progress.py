"""The one progress protocol of napari-pyramids.

Long computations come in two forms:

* a **generator** (``iter_blend``, ``iter_find_template``, ``predict_steps``,
  ``segment_steps``, ``iter_write_ome_zarr``, the actions of
  :mod:`napari_pyramids.actions`): it yields a progress item after each step
  and *returns* its result, so ``result = yield from steps`` passes the result
  on and a napari generator worker can stop it between two steps;
* a **function** (``blend``, ``find_template``, ``segment``,
  ``write_ome_zarr``): it runs the generator to the end and takes two optional
  callbacks, ``progress(done, total)`` after every step and ``cancel()`` checked
  between steps; when ``cancel()`` returns True the work stops and a
  :class:`Cancelled` error (or a subclass naming the computation) is raised.

:func:`drive` is the one place that turns a generator into the function form
(its callbacks are :func:`reporter`'s, which training loops call themselves);
:func:`drain` and :func:`map_steps` are the places that unwrap
``StopIteration.value``. Nothing here imports anything but the standard library.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any, TypeVar

__all__ = [
    "Cancel",
    "Cancelled",
    "Progress",
    "drain",
    "drive",
    "function_form",
    "map_steps",
    "reporter",
]

R = TypeVar("R")
#: ``progress(done, total)``: called after every step.
Progress = Callable[[int, int], None]
#: ``cancel() -> bool``: checked between steps; True stops the work.
Cancel = Callable[[], bool]


class Cancelled(RuntimeError):
    """``cancel()`` returned True: the work stopped and nothing was returned."""


def drain(
    steps: Generator[Any, Any, R], on_step: Callable[[Any], None] | None = None
) -> R:
    """Run ``steps`` to the end, handing each yielded item to ``on_step``.

    Returns the generator's return value (the computation's result).
    """
    while True:
        try:
            item = next(steps)
        except StopIteration as done:
            return done.value
        if on_step is not None:
            on_step(item)


def map_steps(steps: Generator[Any, Any, R], convert: Callable[[Any], Any]):
    """A generator yielding ``convert(item)`` for each item of ``steps``.

    It returns what ``steps`` returns, so ``result = yield from map_steps(...)``
    passes the result through while translating the progress items.
    """
    while True:
        try:
            item = next(steps)
        except StopIteration as done:
            return done.value
        yield convert(item)


def drive(
    steps: Generator[Any, Any, R],
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    *,
    count: Callable[[Any], tuple[int, int]] | None = None,
    cancelled: type[Cancelled] = Cancelled,
) -> R:
    """Run ``steps`` to its result with the ``progress`` / ``cancel`` callbacks.

    Each yielded item becomes ``(done, total)`` through ``count`` (default:
    the item is that pair). ``progress(done, total)`` is called after every
    step; ``cancel()`` is asked after every step but the last, and True
    closes the generator (so it cleans up) and raises ``cancelled``.
    """

    report = reporter(steps, progress, cancel, cancelled)

    def on_step(item) -> None:
        report(*(item if count is None else count(item)))

    return drain(steps, on_step)


def reporter(
    steps: Generator,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    cancelled: type[Cancelled] = Cancelled,
) -> Callable[[int, int], None]:
    """``report(done, total)``: :func:`drive`'s callbacks, for a loop over ``steps``
    that counts its steps itself (training, whose items are losses).

    ``report`` calls ``progress(done, total)``, then asks ``cancel()`` unless
    the step was the last (``done == total``; a ``total`` of 0 means the last
    step is not known, so it asks every time); True closes ``steps`` (so it
    cleans up) and raises ``cancelled``.
    """

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if cancel is not None and (total == 0 or done < total) and cancel():
            steps.close()
            of = f", after {done} of {total} steps" if total else ""
            raise cancelled(f"cancelled at step {done}{of}")

    return report


def function_form(
    steps_function: Callable[..., Generator[Any, Any, R]],
    *,
    name: str,
    doc: str,
    returns: str,
    count: Callable[[Any], tuple[int, int]] | None = None,
    cancelled: type[Cancelled] = Cancelled,
) -> Callable[..., R]:
    """The function form of a generator function: it runs it to its result.

    The function takes the generator function's parameters (its signature is
    theirs, plus ``progress`` and ``cancel``, so ``help()`` and editors show
    them all; ``returns`` names what it returns) and hands the callbacks to
    :func:`drive`. One signature serves both forms, so the two can never
    drift apart.
    """
    signature = inspect.signature(steps_function)
    callbacks = [
        inspect.Parameter(
            key, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind
        )
        for key, kind in (("progress", "Progress | None"), ("cancel", "Cancel | None"))
    ]

    def run(
        *args, progress: Progress | None = None, cancel: Cancel | None = None, **kwargs
    ):
        steps = steps_function(*args, **kwargs)
        return drive(steps, progress, cancel, count=count, cancelled=cancelled)

    run.__name__ = run.__qualname__ = name
    run.__module__ = steps_function.__module__
    run.__doc__ = doc
    run.__signature__ = signature.replace(
        parameters=[*signature.parameters.values(), *callbacks],
        return_annotation=returns,
    )
    return run
