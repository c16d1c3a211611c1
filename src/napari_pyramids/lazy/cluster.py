"""Where lazy work runs: a dask.distributed cluster if there is one, else threads.

The plugin has no scheduler of its own. dask already sends ``compute`` to the
default ``distributed.Client`` when one exists; :func:`scheduler_for` makes that
choice explicit (and lets a caller name a scheduler address), so writers can
pass it on and say where the work ran.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def current_client():
    """The active ``dask.distributed`` Client, or None (also without distributed)."""
    # A Client exists only if distributed was imported: don't pay for importing it.
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:  # "No clients found"
        return None


@contextlib.contextmanager
def scheduler_for(client=None) -> Iterator[object | None]:
    """Yield the scheduler to pass to ``dask.compute(..., scheduler=...)``.

    Parameters
    ----------
    client : distributed.Client or str, optional
        A Client, or the address of a running scheduler (``"tcp://host:8786"``),
        which is connected to for the duration of the block and then closed.
        ``None`` uses the active Client if there is one, else dask's local
        threaded scheduler (yielded as None).
    """
    if client is None:
        yield current_client()
        return
    if not isinstance(client, str):
        yield client
        return
    try:
        from distributed import Client
    except ImportError as err:
        raise ImportError(
            f"a scheduler address ({client!r}) needs dask.distributed; "
            "install it with `pip install distributed`"
        ) from err
    with Client(client, set_as_default=False) as connected:
        yield connected


def describe(scheduler) -> str:
    """A short human description of where work runs, for messages and logs."""
    if scheduler is None:
        return "local threads"
    workers = scheduler.scheduler_info().get("workers", {})
    return f"dask cluster at {scheduler.scheduler.address} ({len(workers)} workers)"
