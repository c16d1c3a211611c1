"""A compact DeepLab for fluorescence nuclei: light backbone, ASPP head, skip decoder.

Most of the compute sits at output stride 8 or 16 with few channels, so the
network runs at several megapixels per second on a laptop CPU. The full
resolution is touched only by a space-to-depth stem (``PixelUnshuffle``) and a
sub-pixel output layer (``PixelShuffle``), which keep one-pixel boundaries
without any convolution at full resolution.

Layout (strides relative to the input)::

    input -unshuffle 2-> stem (s2) -> layer1 (s4) -> layer2 (s8) -> layer3 (s8 | s16)
                           |              |                              |
                           |              |           classifier: DeepLabHead (ASPP)
                           |              |                              |
                           |              +-> decoder: 1x1 + concat + 3x3 (s4)  (v3+)
                           |                                |
                           +----------------> 1x1 + concat + 3x3 (s2)
                                                            |
                             1x1 to classes x 4, PixelShuffle 2 -> logits (s1)

References
----------
.. [1] L.-C. Chen et al., "Rethinking Atrous Convolution for Semantic Image
   Segmentation", arXiv:1706.05587, 2017 (DeepLab v3).
.. [2] L.-C. Chen et al., "Encoder-Decoder with Atrous Separable Convolution
   for Semantic Image Segmentation", ECCV 2018 (DeepLab v3+).
.. [3] W. Shi et al., "Real-Time Single Image and Video Super-Resolution Using
   an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .aspp import DeepLabHead

__all__ = ["Backbone", "CompactDeepLab", "SkipDecoder"]


def _conv_bn_relu(
    in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Backbone(nn.Module):
    """Four stages; returns the stride-2 and stride-4 maps and the last one.

    With ``output_stride=8`` the last stage keeps stride 8 and dilates its
    convolutions by 2 instead of striding (DeepLab's atrous backbone), so it
    sees as far as the stride-16 variant at four times the resolution.
    """

    def __init__(
        self, in_channels: int, widths: Sequence[int], output_stride: int
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(
            nn.PixelUnshuffle(2), *_conv_bn_relu(4 * in_channels, w0)
        )
        self.layer1 = nn.Sequential(
            _conv_bn_relu(w0, w1, stride=2), _conv_bn_relu(w1, w1)
        )
        self.layer2 = nn.Sequential(
            _conv_bn_relu(w1, w2, stride=2), _conv_bn_relu(w2, w2)
        )
        if output_stride == 16:
            self.layer3 = nn.Sequential(
                _conv_bn_relu(w2, w3, stride=2), _conv_bn_relu(w3, w3)
            )
        else:
            self.layer3 = nn.Sequential(
                _conv_bn_relu(w2, w3, dilation=2), _conv_bn_relu(w3, w3, dilation=2)
            )

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low2 = self.stem(x)
        low4 = self.layer1(low2)
        return low2, low4, self.layer3(self.layer2(low4))


def _reduce(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv + BN + ReLU: the narrow view of a skip the decoder concatenates."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class SkipDecoder(nn.Module):
    """DeepLab v3+ decoder with two skips and a sub-pixel output layer.

    The head features are upsampled bilinearly to stride 4 and fused (3x3
    conv) with 1x1-reduced stride-4 features, then upsampled to stride 2 and
    fused with reduced stride-2 features, which carry the sharp edges. v3+
    uses one skip; the second one lets nuclei only a few pixels wide, packed
    side by side, keep apart: a stride-8 head cell is wider than such a
    nucleus. The last 1x1 conv gives ``num_classes * 4`` channels that
    ``PixelShuffle`` rearranges into full-resolution logits; it starts with
    the four sub-pixels of each class equal (ICNR, Aitken et al. 2017), so
    training does not begin from a checkerboard.

    ``reduced_channels`` (the 1x1-reduced skips) and ``channels`` (the 3x3
    fusions) are given for strides 2 and 4; :class:`CompactDeepLab` holds
    the shipped values (its ``skip_widths`` and ``decoder_widths``).
    """

    def __init__(
        self,
        head_channels: int,
        skip_channels: tuple[int, int],
        num_classes: int,
        *,
        reduced_channels: tuple[int, int],
        channels: tuple[int, int],
    ) -> None:
        super().__init__()
        (skip2, skip4), (reduced2, reduced4) = skip_channels, reduced_channels
        self.low4 = _reduce(skip4, reduced4)
        self.fuse4 = _conv_bn_relu(head_channels + reduced4, channels[1])
        self.low = _reduce(skip2, reduced2)
        self.fuse = _conv_bn_relu(channels[1] + reduced2, channels[0])
        self.classifier = nn.Conv2d(channels[0], num_classes * 4, 1)
        with torch.no_grad():
            weight = self.classifier.weight[::4].clone()
            self.classifier.weight.copy_(weight.repeat_interleave(4, dim=0))
            self.classifier.bias.copy_(self.classifier.bias[::4].repeat_interleave(4))
        self.upsample = nn.PixelShuffle(2)

    def forward(
        self, head: torch.Tensor, low2: torch.Tensor, low4: torch.Tensor
    ) -> torch.Tensor:
        x = self.fuse4(torch.cat([_upsample_to(head, low4), self.low4(low4)], dim=1))
        x = self.fuse(torch.cat([_upsample_to(x, low2), self.low(low2)], dim=1))
        return self.upsample(self.classifier(x))


class CompactDeepLab(nn.Module):
    """Backbone + DeepLab v3 head (+ optional v3+ decoder) for small images on CPU.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for a fluorescence channel).
    num_classes : int
        Output classes (3 for nuclei: background, core, rim).
    output_stride : {8, 16}
        Stride of the ASPP input.
    widths : sequence of 4 ints
        Channels of the stem and of the three stages. The defaults (and
        ``aspp_channels``) are the shipped "nuclei" model's architecture, which
        weights without a recorded config are assumed to have.
    atrous_rates : sequence of int
        ASPP rates at output stride 16; at output stride 8 they are doubled,
        so the branches cover the same image distances either way.
    aspp_channels : int
        Width of the ASPP branches and the head.
    skip_widths, decoder_widths : (int, int)
        Decoder channels at strides 2 and 4: the 1x1-reduced skips, and the
        3x3 fusions (:class:`SkipDecoder`).
    decoder : bool
        Add the DeepLab v3+ skip decoder (sharper boundaries). Without it
        the head predicts classes at ``output_stride`` and they are upsampled
        bilinearly, as in DeepLab v3.
    separable : bool
        Depthwise-separable atrous convolutions in ASPP.
    dropout : float
        Dropout after the ASPP projection.

    Notes
    -----
    Inputs of any size work: they are padded (edge values) to a multiple of
    ``output_stride`` and the logits are cropped back. Run inference in
    ``eval()``: the image-pooling BN cannot normalise a batch of one in
    training mode.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 3,
        *,
        output_stride: int = 8,
        widths: Sequence[int] = (24, 48, 64, 96),
        atrous_rates: Sequence[int] = (1, 2, 3),
        aspp_channels: int = 48,
        skip_widths: Sequence[int] = (8, 16),
        decoder_widths: Sequence[int] = (24, 32),
        decoder: bool = True,
        separable: bool = False,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4:
            raise ValueError(
                f"widths needs 4 entries (stem and 3 stages), got {widths}"
            )
        self.config: dict[str, Any] = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "output_stride": output_stride,
            "widths": list(widths),
            "atrous_rates": [int(r) for r in atrous_rates],
            "aspp_channels": aspp_channels,
            "skip_widths": [int(w) for w in skip_widths],
            "decoder_widths": [int(w) for w in decoder_widths],
            "decoder": decoder,
            "separable": separable,
            "dropout": dropout,
        }
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.output_stride = output_stride
        self.backbone = Backbone(in_channels, widths, output_stride)
        rates = [int(r) * 16 // output_stride for r in atrous_rates]
        self.classifier = DeepLabHead(
            widths[3],
            aspp_channels if decoder else num_classes,
            rates,
            channels=aspp_channels,
            separable=separable,
            dropout=dropout,
        )
        self.decoder = (
            SkipDecoder(
                aspp_channels,
                (widths[0], widths[1]),
                num_classes,
                reduced_channels=tuple(skip_widths),
                channels=tuple(decoder_widths),
            )
            if decoder
            else None
        )

    @property
    def aspp(self) -> nn.Module:
        """The ASPP module (``classifier.0``)."""
        return self.classifier[0]

    def pad_to_stride(self, x: torch.Tensor) -> torch.Tensor:
        """Pad bottom and right (edge values) to a multiple of the output stride."""
        stride = self.output_stride
        pad_y, pad_x = -x.shape[-2] % stride, -x.shape[-1] % stride
        if pad_y or pad_x:
            x = F.pad(x, (0, pad_x, 0, pad_y), mode="replicate")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, num_classes, H, W) for an input (N, C, H, W)."""
        height, width = x.shape[-2:]
        x = self.pad_to_stride(x)
        low2, low4, features = self.backbone(x)
        head = self.classifier(features)
        if self.decoder is None:
            logits = _upsample_to(head, x)
        else:
            logits = self.decoder(head, low2, low4)
        return logits[..., :height, :width]
