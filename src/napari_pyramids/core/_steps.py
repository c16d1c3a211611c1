"""Helpers for the generator form of long computations.

Long computations (``iter_pyramid``, ``iter_blend``, ``iter_find_template``,
tiled segmentation) are generators: they yield progress between steps and
*return* their result, so a GUI can report progress and stop between steps.
These helpers are the places that unwrap ``StopIteration.value``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")


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
