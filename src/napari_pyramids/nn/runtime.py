"""The network ready to run: the device it runs on, the model from a name, a
file or an instance, its inference copy (batch norms fused into the
convolutions, on that device), and the image checked for it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..core.checks import check_finite
from .model import CompactDeepLab
from .synthetic import CLASS_NAMES
from .weights import load_model

__all__ = ["available_devices", "resolve_device"]

ModelLike = str | Path | CompactDeepLab


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; others go to torch.

    A device torch cannot use here (``"cuda"`` on a machine without CUDA) is a
    ValueError that lists the ones it can.
    """
    found = available_devices()
    if str(device) != "auto":
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"unknown device {device!r}; use one of {found}") from exc
        if chosen.type not in found:
            raise ValueError(
                f"device {device!r} is not available on this machine; use one of "
                f"{found}"
            )
        return chosen
    return torch.device(next((d for d in ("cuda", "mps") if d in found), "cpu"))


def available_devices() -> list[str]:
    """``"auto"``, ``"cpu"`` and whichever of ``"cuda"`` and ``"mps"`` torch can use."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def _as_model(model: ModelLike) -> CompactDeepLab:
    """The model itself, or the one a name or path loads; checks its classes."""
    if isinstance(model, nn.Module) and not isinstance(model, CompactDeepLab):
        raise TypeError(
            f"expected a CompactDeepLab (see load_model), got {type(model).__name__}"
        )
    net = model if isinstance(model, CompactDeepLab) else load_model(model)
    if net.num_classes != len(CLASS_NAMES):
        raise ValueError(
            f"the model predicts {net.num_classes} classes; nucleus segmentation "
            f"needs the {len(CLASS_NAMES)} classes {CLASS_NAMES}"
        )
    return net


def _inference_copy(model: CompactDeepLab, device: torch.device) -> CompactDeepLab:
    """An eval-mode copy with every conv+BN pair folded into one conv.

    Folding is exact in eval mode and saves a pass over every feature map;
    module names (``classifier.0.convs.N``) are kept for hooks. The caller's
    model is left untouched.
    """
    net = copy.deepcopy(model).eval()
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, bn = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module[i], module[i + 1] = (
                        fuse_conv_bn_eval(conv, bn),
                        nn.Identity(),
                    )
    memory_format = (
        torch.channels_last if device.type == "cpu" else torch.contiguous_format
    )
    return net.to(device=device, memory_format=memory_format)


def _check_image(
    image: np.ndarray, channels: int, channel_axis: int | None
) -> np.ndarray:
    """Validate and return a (H, W) view (one-channel model) or (C, H, W) view."""
    image = np.asarray(image)
    if image.dtype == bool or image.dtype.kind not in "uif":
        raise ValueError(f"image must be integer or float, got dtype {image.dtype}")
    if channel_axis is not None:
        if image.ndim != 3:
            raise ValueError(
                f"channel_axis given but image has {image.ndim} dims, expected 3"
            )
        image = np.moveaxis(image, channel_axis, 0)
        if image.shape[0] != channels:
            raise ValueError(
                f"the model takes {channels} channel(s), the image has "
                f"{image.shape[0]} on channel_axis={channel_axis}; pick the nuclear "
                "stain channel, e.g. "
                f"np.take(image, c, axis={channel_axis})"
            )
        if channels == 1:
            image = image[0]
    elif channels > 1:
        raise ValueError(f"the model takes {channels} channels: pass channel_axis")
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        raise ValueError(
            f"image of shape {image.shape} looks like RGB(A) but the model takes one "
            "channel: pass the nuclear stain channel, e.g. image[..., 2] for blue "
            "DAPI, or give channel_axis=-1 with a one-channel image"
        )
    if image.ndim != (2 if channels == 1 else 3):
        raise ValueError(
            f"expected one 2-D image (H, W), got shape {image.shape}; for a stack "
            "give segment() its axes ('zyx', 'tyx', 'tzyx'), or pass channel_axis "
            "for channels"
        )
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    check_finite(image)
    return image
