"""One signature for functions that pass their options on to another.

:func:`napari_pyramids.segment` takes the options of
:func:`napari_pyramids.nn.predict_steps`, which does the work. Writing them
out again in every function that forwards them would copy one long list of
parameters (and their defaults) into several places; ``**options`` alone
would hide them from ``help()`` and editors. :func:`forwards_options` gives
the forwarding function the real, complete signature, taken from the one
that defines the options, and refuses keywords that are not in it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable

__all__ = ["forwards_options"]


def forwards_options(base: Callable, *, drop: Iterable[str] = ()) -> Callable:
    """Decorator: the function's ``**options`` are ``base``'s keyword-only
    parameters (less ``drop`` and those the function names itself).

    The decorated function's signature lists them with ``base``'s defaults,
    and a call with any other keyword raises a TypeError naming it, as a
    written-out signature would.
    """
    dropped = set(drop)

    def decorate(func: Callable) -> Callable:
        own = inspect.signature(func)
        kept = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        names = {p.name for p in kept}
        forwarded = [
            p
            for p in inspect.signature(base).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in names | dropped
        ]
        signature = own.replace(parameters=[*kept, *forwarded])

        @functools.wraps(func)
        def forwarding(*args, **kwargs):
            signature.bind(*args, **kwargs)  # unknown keywords: a TypeError
            return func(*args, **kwargs)

        forwarding.__signature__ = signature
        return forwarding

    return decorate
