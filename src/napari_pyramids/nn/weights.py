"""Model registry, checksums and safe loading of weights.

Weights are read without executing code: safetensors files directly, and
``.pt`` / ``.pth`` files only through ``torch.load(weights_only=True)``, which
refuses anything but tensors and plain containers. A registered model is
checked against its recorded SHA-256 before it is read. Every failure raises
:class:`WeightsError` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .model import CompactDeepLab

__all__ = [
    "REGISTRY",
    "WEIGHTS_DIR",
    "RegisteredModel",
    "WeightsError",
    "load_model",
    "save_model",
    "sha256_file",
    "weights_file",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class RegisteredModel:
    """A shipped model: its file under :data:`WEIGHTS_DIR`, checksum and purpose."""

    filename: str
    sha256: str
    description: str


REGISTRY: dict[str, RegisteredModel] = {
    "nuclei": RegisteredModel(
        filename="nuclei.safetensors",
        sha256="43543668738847f3d0a3af588f3f3e7cbf4bca7a25b13fc6e319a0c4f13adf91",
        description=(
            "Fluorescence nuclei (DAPI/Hoechst-like), one channel; classes "
            "background, core, rim; trained at a nucleus diameter of 20 px on "
            "the real annotated DSB 2018 fluorescence images (training fold) "
            "by napari_pyramids.nn.train; see weights/nuclei.md."
        ),
    ),
}


class WeightsError(ValueError):
    """Weights that cannot be loaded: unreadable, wrong checksum, keys or shapes."""


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        config = json.loads(metadata["config"]) if "config" in metadata else {}
    except json.JSONDecodeError as exc:
        raise WeightsError(
            f"{path}: its 'config' metadata (the architecture) is not JSON ({exc}); "
            "save models with napari_pyramids.nn.save_model"
        ) from exc
    return state, config


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise WeightsError(
            f"{path}: refused or unreadable by torch.load(weights_only=True); only "
            f"plain state dicts are accepted, nothing is unpickled ({exc})"
        ) from exc
    config: dict[str, Any] = {}
    if isinstance(obj, dict) and "state_dict" in obj:
        config = obj.get("config") or {}
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise WeightsError(
            f"{path}: not a state dict (a mapping of parameter names to tensors), "
            f"got {type(obj).__name__}"
        )
    return obj, config


def _check_state(
    path: Path, model: torch.nn.Module, state: dict[str, torch.Tensor]
) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (e.g. {mismatched[:3]})")
    if problems:
        raise WeightsError(
            f"{path}: checkpoint does not fit the model: " + "; ".join(problems)
        )


def weights_file(name_or_path: str | Path) -> Path:
    """The file behind a registered model name, or the given path if it exists."""
    name = str(name_or_path)
    if name in REGISTRY:
        return WEIGHTS_DIR / REGISTRY[name].filename
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"no model named {name!r} and no such file; "
            f"registered models: {sorted(REGISTRY)}"
        )
    return path


def load_model(
    name_or_path: str | Path, *, sha256: str | None = None
) -> CompactDeepLab:
    """Load a registered model by name, or a weights file, in eval mode on the CPU.

    Parameters
    ----------
    name_or_path : str or Path
        A name in :data:`REGISTRY` (``"nuclei"``) or a path to a
        ``.safetensors`` file (architecture in its ``config`` metadata) or a
        ``.pt`` / ``.pth`` state dict (optionally ``{"state_dict": ...,
        "config": {...}}``); without a config the default
        :class:`~.model.CompactDeepLab` architecture is assumed.
    sha256 : str, optional
        Expected checksum of a file given by path; registered models always
        use the recorded one.

    Raises
    ------
    FileNotFoundError
        Unknown name and no such file.
    WeightsError
        Checksum mismatch, unreadable or unsafe file, not a state dict, keys or
        shapes that do not fit the architecture.
    """
    path = weights_file(name_or_path)
    if str(name_or_path) in REGISTRY:
        sha256 = REGISTRY[str(name_or_path)].sha256
    if sha256 is not None and not _is_sha256(sha256):
        raise ValueError(
            f"sha256 must be 64 hex digits (as sha256_file or `sha256sum` print "
            f"them), got {sha256!r}"
        )
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256.lower():
            raise WeightsError(
                f"{path}: SHA-256 mismatch (expected {sha256}, got {actual}); the "
                "file is corrupt, truncated or not the recorded weights"
            )
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state, config = _read_safetensors(path)
    elif suffix in (".pt", ".pth"):
        state, config = _read_torch(path)
    else:
        raise WeightsError(
            f"{path}: unknown weights format {suffix!r}; use .safetensors, .pt or .pth"
        )
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: its config must be a mapping, got {config!r}")
    # The architecture is built on the meta device first (shapes, no memory):
    # a config with absurd widths must fail on the shapes, not allocate terabytes.
    with torch.device("meta"):
        skeleton = _model_from_config(path, config)
    _check_state(path, skeleton, state)
    model = _model_from_config(path, config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _model_from_config(path: Path, config: dict[str, Any]) -> CompactDeepLab:
    try:
        return CompactDeepLab(**config)
    except (TypeError, ValueError) as exc:
        raise WeightsError(
            f"{path}: invalid architecture config {config} ({exc})"
        ) from exc


def _is_sha256(value) -> bool:
    """True for a string of 64 hex digits."""
    hexdigits = set("0123456789abcdefABCDEF")
    return isinstance(value, str) and len(value) == 64 and set(value) <= hexdigits


def save_model(model: CompactDeepLab, path: str | Path, **meta: object) -> Path:
    """Write ``model`` as safetensors, with its architecture and ``meta`` as metadata.

    :func:`load_model` reads the file back (the architecture from the
    ``config`` entry). Each ``meta`` value is stored as JSON; a model from
    :func:`.finetune.finetune` adds its record (base model and its SHA-256,
    the training pairs' shapes and hashes, steps, time, held-out scores).
    The file is written beside its final name and moved into place, so an
    interrupted save never leaves half a file under ``path``.
    """
    from safetensors.torch import save_file

    from ..files import write_atomically

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ValueError(f"{path}: save models as .safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    record = getattr(model, "finetune_record", None)  # nn.finetune's account
    meta = {**(record.metadata() if record is not None else {}), **meta}
    metadata = {
        "config": json.dumps(model.config),
        **{k: json.dumps(v) for k, v in meta.items()},
    }
    return write_atomically(
        path, lambda partial: save_file(state, str(partial), metadata=metadata)
    )
