"""Torch part of napari-pyramids: ASPP, SPP, PPM and a pretrained nuclei segmenter.

No napari or Qt imports here; everything runs from scripts and tests.

>>> from napari_pyramids.nn import segment, load_model
>>> labels = segment(image)                      # doctest: +SKIP
>>> model = load_model("nuclei")                 # doctest: +SKIP
"""

from .aspp import ASPP, ASPPConv, ASPPPooling, DeepLabHead
from .infer import (
    Prediction,
    SegmentationCancelled,
    aspp_branch_responses,
    predict_steps,
    segment,
    segment_steps,
)
from .model import CompactDeepLab
from .pooling import PyramidPoolingModule, SpatialPyramidPooling
from .weights import REGISTRY, WeightsError, load_model

__all__ = [
    "ASPP",
    "ASPPConv",
    "ASPPPooling",
    "CompactDeepLab",
    "DeepLabHead",
    "Prediction",
    "PyramidPoolingModule",
    "REGISTRY",
    "SegmentationCancelled",
    "SpatialPyramidPooling",
    "WeightsError",
    "aspp_branch_responses",
    "load_model",
    "predict_steps",
    "segment",
    "segment_steps",
]
