"""Atrous spatial pyramid pooling (ASPP) and the DeepLab v3 head.

ASPP probes one feature map with parallel atrous (dilated) convolutions at
several rates plus an image-level pooling branch, so each output pixel sees
context at several scales without losing resolution (Chen et al., DeepLab v3).
The class and submodule names (``ASPP``, ``ASPPConv``, ``ASPPPooling``,
``DeepLabHead``; ``convs``, ``project``) follow torchvision's
``torchvision/models/segmentation/deeplabv3.py`` on purpose: a torchvision
DeepLabV3 head state dict loads here key for key, and every branch can be
addressed by name (``classifier.0.convs.N``) for hooks.

References
----------
.. [1] L.-C. Chen, G. Papandreou, F. Schroff, H. Adam, "Rethinking Atrous
   Convolution for Semantic Image Segmentation", arXiv:1706.05587, 2017.
.. [2] L.-C. Chen, Y. Zhu, G. Papandreou, F. Schroff, H. Adam,
   "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
   Segmentation", ECCV 2018 (DeepLab v3+).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ASPP", "ASPPConv", "ASPPPooling", "DeepLabHead", "SeparableConv2d"]


class SeparableConv2d(nn.Sequential):
    """Depthwise atrous 3x3 convolution followed by a pointwise 1x1 one.

    DeepLab v3+ [2]_ replaces the dense atrous convolutions of ASPP with this
    factorisation: about ``9 / out_channels + 1 / 9`` of the multiply-adds of
    a dense 3x3 convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                in_channels,
                3,
                padding=dilation,
                dilation=dilation,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )


class ASPPConv(nn.Sequential):
    """One atrous branch: 3x3 convolution at ``dilation``, BN, ReLU.

    The padding equals the dilation, so the branch keeps the spatial size of
    its input for every size, odd or even.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    dilation : int
        Atrous rate: the kernel taps are ``dilation`` pixels apart.
    separable : bool
        Use a depthwise-separable convolution (DeepLab v3+) instead of a
        dense one. Changes the state-dict keys (``0.0`` and ``0.1``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilation: int,
        separable: bool = False,
    ) -> None:
        if dilation < 1:
            raise ValueError(f"atrous rate must be >= 1, got {dilation}")
        conv: nn.Module
        if separable:
            conv = SeparableConv2d(in_channels, out_channels, dilation)
        else:
            conv = nn.Conv2d(
                in_channels,
                out_channels,
                3,
                padding=dilation,
                dilation=dilation,
                bias=False,
            )
        super().__init__(conv, nn.BatchNorm2d(out_channels), nn.ReLU())


class ASPPPooling(nn.Sequential):
    """Image-level branch: global average pooling, 1x1 conv, BN, ReLU, broadcast.

    The pooled vector summarises the *whole* input. When an image is processed
    in tiles, each tile would see a different summary and seams would appear,
    so a caller can pin the vector with :attr:`fixed` (computed once for the
    whole image); while it is set, the input only supplies the output size.

    The BatchNorm acts on a 1x1 map, so in training mode it needs a batch of
    more than one image (pytorch/vision#2151); run inference in ``eval()``.

    Broadcasting a 1x1 map equals torchvision's bilinear upsampling of it
    (``align_corners=False``) exactly, and costs nothing.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )
        self.fixed: torch.Tensor | None = None

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Return the image-level feature vector of ``x``, shape (N, C, 1, 1)."""
        for module in self:
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x) if self.fixed is None else self.fixed
        return pooled.expand(x.shape[0], -1, x.shape[-2], x.shape[-1])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3 [1]_).

    Branches, in the order of :attr:`convs`: a 1x1 convolution, one
    :class:`ASPPConv` per atrous rate and :class:`ASPPPooling`. Their outputs
    are concatenated and fused by :attr:`project` (1x1 conv, BN, ReLU,
    dropout). The output has the spatial size of the input.

    Parameters
    ----------
    in_channels : int
        Channels of the feature map.
    atrous_rates : sequence of int
        One 3x3 atrous branch per rate. DeepLab uses (6, 12, 18) at output
        stride 16 and the doubled rates at output stride 8.
    out_channels : int
        Channels of every branch and of the output (torchvision: 256).
    separable : bool
        Depthwise-separable atrous branches, as in DeepLab v3+ [2]_.
    dropout : float
        Dropout after the projection (torchvision: 0.5).
    """

    def __init__(
        self,
        in_channels: int,
        atrous_rates: Sequence[int],
        out_channels: int = 256,
        *,
        separable: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.atrous_rates = tuple(int(r) for r in atrous_rates)
        branches: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            )
        ]
        branches += [
            ASPPConv(in_channels, out_channels, rate, separable)
            for rate in self.atrous_rates
        ]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(dropout),
        )

    @property
    def branch_names(self) -> list[str]:
        """Readable name of each entry of :attr:`convs`, in order."""
        rates = [f"rate {r}" for r in self.atrous_rates]
        return ["1x1", *rates, "image pooling"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabHead(nn.Sequential):
    """DeepLab v3 head: ASPP, 3x3 conv, BN, ReLU, 1x1 conv to ``num_classes``.

    Same layout (and state-dict keys) as torchvision's ``DeepLabHead``.

    Parameters
    ----------
    in_channels : int
        Channels of the backbone output.
    num_classes : int
        Output channels (classes, or decoder features in a v3+ model).
    atrous_rates : sequence of int
        ASPP rates, see :class:`ASPP`.
    channels : int
        Width of ASPP and of the 3x3 conv (torchvision: 256).
    separable, dropout
        Passed to :class:`ASPP`.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        atrous_rates: Sequence[int] = (12, 24, 36),
        *,
        channels: int = 256,
        separable: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(
            ASPP(
                in_channels,
                atrous_rates,
                channels,
                separable=separable,
                dropout=dropout,
            ),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, num_classes, 1),
        )
