"""Pyramid pooling: SPP (He et al.) and the PSPNet pyramid pooling module.

References
----------
.. [1] K. He, X. Zhang, S. Ren, J. Sun, "Spatial Pyramid Pooling in Deep
   Convolutional Networks for Visual Recognition", ECCV 2014 / TPAMI 2015.
.. [2] H. Zhao, J. Shi, X. Qi, X. Wang, J. Jia, "Pyramid Scene Parsing
   Network", CVPR 2017.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PyramidPoolingModule", "SpatialPyramidPooling"]


def _check_bins(bins: Sequence[int]) -> tuple[int, ...]:
    bins = tuple(int(b) for b in bins)
    if not bins or min(bins) < 1:
        raise ValueError(
            f"bins must be a non-empty sequence of positive ints, got {bins}"
        )
    return bins


class SpatialPyramidPooling(nn.Module):
    """Pool a feature map into fixed grids and concatenate: a fixed-length vector.

    He et al. [1]_ max-pool the last feature map into ``b x b`` bins for each
    level (4x4, 2x2, 1x1), so any input size gives ``C * sum(b * b)`` numbers
    and a fully connected layer can follow a convolutional net without
    cropping or warping the image.

    Parameters
    ----------
    bins : sequence of int
        Grid sizes, coarse or fine in any order; default (4, 2, 1).
    mode : {"max", "avg"}
        Pooling inside each bin (the paper uses max).

    Shapes
    ------
    (N, C, H, W) -> (N, C * sum(b * b for b in bins)); H and W may be smaller
    than a bin count (bins then overlap, as adaptive pooling does).
    """

    def __init__(self, bins: Sequence[int] = (4, 2, 1), mode: str = "max") -> None:
        super().__init__()
        self.bins = _check_bins(bins)
        pools = {"max": nn.AdaptiveMaxPool2d, "avg": nn.AdaptiveAvgPool2d}
        if mode not in pools:
            raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
        self.mode = mode
        self.pools = nn.ModuleList(pools[mode](b) for b in self.bins)

    def output_length(self, channels: int) -> int:
        """Length of the output vector for ``channels`` input channels."""
        return channels * sum(b * b for b in self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([pool(x).flatten(1) for pool in self.pools], dim=1)


class PyramidPoolingModule(nn.Module):
    """PSPNet's pyramid pooling module [2]_.

    For each bin count ``b`` the input is average-pooled to ``b x b``, reduced
    by a 1x1 conv + BN + ReLU to ``reduction_channels``, upsampled bilinearly
    back to the input size, and all of them are concatenated with the input.
    The output keeps the spatial size and has
    ``in_channels + len(bins) * reduction_channels`` channels.

    The BN of the 1x1 bin sees one value per channel and image, so train with
    batches of more than one image and infer in ``eval()``.

    Parameters
    ----------
    in_channels : int
        Input channels.
    bins : sequence of int
        Pooled grid sizes, default (1, 2, 3, 6) as in PSPNet.
    reduction_channels : int, optional
        Channels per pooled branch; default ``in_channels // len(bins)``
        (PSPNet's 1/N reduction).
    """

    def __init__(
        self,
        in_channels: int,
        bins: Sequence[int] = (1, 2, 3, 6),
        reduction_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.bins = _check_bins(bins)
        if reduction_channels is None:
            reduction_channels = max(1, in_channels // len(self.bins))
        self.out_channels = in_channels + len(self.bins) * reduction_channels
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_channels, reduction_channels, 1, bias=False),
                nn.BatchNorm2d(reduction_channels),
                nn.ReLU(),
            )
            for b in self.bins
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False)
            for stage in self.stages
        ]
        return torch.cat([x, *pooled], dim=1)
