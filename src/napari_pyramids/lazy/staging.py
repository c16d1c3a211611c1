"""Writes that are never seen half done.

:func:`staged_store` hands out a hidden temporary folder beside the target
(and, on request, a scratch folder beside that), and :func:`_commit` renames
it to the target only when everything is written; a failure or a cancel
removes both. A writer killed outright cannot clean up, so the next write to
the same target removes the temporary folders of writers that are no longer
running (their names carry the process id). :func:`check_target` refuses to
replace anything but an empty folder or an OME-Zarr image as this project
writes it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["check_target", "staged_store"]


def check_target(path: Path, overwrite: bool) -> None:
    """Refuse, before any work, a write to ``path`` that would fail or destroy data.

    ``path`` must not exist unless ``overwrite`` is set and it is an empty
    folder or an OME-Zarr image as this project writes it (anything else is
    never deleted), and its folder must exist. Writers of OME-Zarr stores
    (:func:`~napari_pyramids.lazy.ome_zarr.iter_write_ome_zarr`, whole-slide
    segmentation) call it first, then write inside :func:`staged_store`.
    """
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(
                f"{path} already exists; pass overwrite=True to replace it, or "
                "choose another path"
            )
        _check_replaceable(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {path}: the folder {path.parent} does not exist; "
            "create it first or choose another location"
        )


#: The metadata files of a Zarr v3 (``zarr.json``) or v2 group.
_METADATA_FILES = frozenset({"zarr.json", ".zattrs", ".zgroup", ".zmetadata"})


def _check_replaceable(path: Path) -> None:
    """Raise unless ``path`` is what ``overwrite=True`` may delete.

    That is an empty folder or an OME-Zarr multiscale image as this module
    writes it: metadata files plus the level folders its metadata names,
    nothing else. A file, a link or a folder holding anything more is refused,
    so a mistyped path never costs anyone their data.
    """
    reason = _not_replaceable_because(path)
    if reason:
        raise FileExistsError(
            f"{path} is not an OME-Zarr image written by napari-pyramids ({reason}), "
            "so overwrite=True will not replace it; choose another path, or "
            "remove it yourself if it really should go"
        )


def _not_replaceable_because(path: Path) -> str | None:
    if path.is_symlink():
        return "it is a symbolic link"
    if not path.is_dir():
        return "it is a file"
    names = {entry.name for entry in path.iterdir()}
    if not names:
        return None
    levels = _dataset_paths(path)
    if levels is None:
        return "it has no multiscales metadata"
    extra = sorted(names - _METADATA_FILES - levels)
    if extra:
        return "it also holds " + ", ".join(extra[:5]) + (", ..." if extra[5:] else "")
    if not all((path / level).is_dir() for level in levels & names):
        return "a level is not a folder"
    return None


def _dataset_paths(path: Path) -> set[str] | None:
    """The level paths named by ``path``'s multiscales metadata, or None."""
    for name in ("zarr.json", ".zattrs"):
        try:
            attrs = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        if name == "zarr.json" and isinstance(attrs, dict):
            attrs = attrs.get("attributes", {}).get("ome", {})
        try:
            return {str(ds["path"]) for ds in attrs["multiscales"][0]["datasets"]}
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
    return None


#: Temporary folders beside ``path``: ``.NAME.PID-HEX.partial`` (the store being
#: written), ``.scratch`` (float levels) and ``.old`` (the store being replaced).
#: Older versions named them without the writer's process id.
_TEMP_NAME = r"\.(?:(\d+)-)?[0-9a-f]{8}\.(?:partial|scratch|old)"


def _remove_leftovers(path: Path) -> None:
    """Remove the temporary folders of earlier writes to ``path`` that died.

    A write killed outright (``kill -9``, a power cut) cannot clean up after
    itself; the next write to the same place does. A temporary whose writer
    process is still running is left alone.
    """
    pattern = re.compile(re.escape(f".{path.name}") + _TEMP_NAME + "$")
    for entry in path.parent.iterdir():
        match = pattern.match(entry.name)
        if match and not _process_running(match.group(1)):
            _remove(entry)


def _process_running(pid: str | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # it exists, and belongs to another user
        return True
    return True


def _make_temp(path: Path, suffix: str) -> Path:
    temp = path.parent / f".{path.name}.{_temp_tag()}.{suffix}"
    try:
        temp.mkdir()
    except OSError as err:
        raise PermissionError(
            f"cannot write {path}: the folder {path.parent} is not writable "
            f"({err.strerror}); choose a location you can write to"
        ) from err
    return temp


def _temp_tag() -> str:
    """``PID-HEX``: unique, and says which process may still be using it."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def staged_store(
    path: Path, overwrite: bool, *, scratch: bool = False
) -> Iterator[tuple[Path, Path | None]]:
    """A hidden folder to write the store of ``path`` in, moved there when done.

    Yields ``(temp, scratch_folder)``: a new temporary folder beside ``path``
    to write the whole store in and, if ``scratch``, a second one for
    intermediate arrays (else None). When the block ends without an error
    ``temp`` is moved to ``path`` (replacing an old store only with
    ``overwrite``, as :func:`check_target` allows); whatever happens, both
    temporaries are then removed, so an error or a cancel (a generator
    closed inside the block) leaves nothing half-written at ``path``. The
    temporaries of earlier writes to ``path`` that were killed outright are
    removed first.
    """
    _remove_leftovers(path)
    temp = _make_temp(path, "partial")
    extra = None
    try:
        if scratch:
            extra = _make_temp(path, "scratch")
        yield temp, extra
        _commit(temp, path, overwrite)
    finally:
        _remove(temp)
        if extra is not None:
            _remove(extra)


def _commit(temp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished store to ``path``, replacing an old one only if asked."""
    if path.exists() or path.is_symlink():
        if not overwrite:  # appeared while we were writing
            raise FileExistsError(f"{path} appeared while writing; nothing replaced")
        _check_replaceable(path)
        old = path.parent / f".{path.name}.{_temp_tag()}.old"
        os.replace(path, old)
        os.replace(temp, path)
        _remove(old)
    else:
        os.replace(temp, path)
