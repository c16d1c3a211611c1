"""Models the user trained (Train widget, ``npp.finetune``): where they live, by name.

A small registry file ``models.json`` in the user models folder maps each
name to its weights file and SHA-256, so the Segment widget lists the models
across sessions and loads them checked. The folder is napari-pyramids' user
data folder (``platformdirs``), or ``$NAPARI_PYRAMIDS_MODELS`` when set.
numpy-free and torch-free: the widgets read it at start-up.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from napari_pyramids.files import write_atomically

__all__ = ["models_folder", "new_model_path", "register", "resolve", "user_models"]

_REGISTRY = "models.json"


def models_folder() -> Path:
    """The folder user models are saved to (not created here)."""
    override = os.environ.get("NAPARI_PYRAMIDS_MODELS")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-pyramids")) / "models"


def user_models() -> dict[str, dict[str, str]]:
    """``{name: {"path": ..., "sha256": ...}}`` of the saved models still on disk."""
    registry = models_folder() / _REGISTRY
    try:
        entries = json.loads(registry.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {
        name: entry
        for name, entry in entries.items()
        if isinstance(entry, dict) and Path(entry.get("path", "")).is_file()
    }


def new_model_path(name: str) -> Path:
    """Where a new model called ``name`` is saved: a file name made of its name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._") or "model"
    return models_folder() / f"{stem}.safetensors"


def register(name: str, path: str | Path, sha256: str) -> None:
    """Add (or replace) ``name`` in the registry, written atomically."""
    if not name.strip():
        raise ValueError("give the model a name")
    folder = models_folder()
    folder.mkdir(parents=True, exist_ok=True)
    entries = {**user_models(), name: {"path": str(path), "sha256": sha256}}
    text = json.dumps(entries, indent=1)
    write_atomically(folder / _REGISTRY, lambda partial: partial.write_text(text))


def resolve(name_or_path: str) -> str:
    """The weights file of a user model called ``name_or_path``, else it as given.

    So a model is picked by the name the user gave it, and a registered name
    or a weights path passes through to :func:`napari_pyramids.load_model`.
    """
    saved = user_models()
    return saved[name_or_path]["path"] if name_or_path in saved else name_or_path
