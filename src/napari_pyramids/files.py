"""Writing files so that an interrupted write never leaves half a file in place."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` beside ``path``, then move the result into place.

    The temporary is a hidden file in the same folder (``.NAME.partial.SUFFIX``,
    the suffix kept for writers that look at it), so the final rename is
    atomic and a crash leaves the old file, or none, under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
