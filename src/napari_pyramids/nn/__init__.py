"""Torch part of napari-pyramids: ASPP, SPP, PPM and a pretrained nuclei segmenter.

No napari or Qt imports here; everything runs from scripts and tests. Names
load on first use (PEP 562), so the numpy-only modules (``nn.data``,
``nn.metrics``, ``nn.synthetic``, ``nn.defaults``) import without torch.

>>> from napari_pyramids.nn import segment, load_model
>>> labels = segment(image)                      # doctest: +SKIP
>>> model = load_model("nuclei")                 # doctest: +SKIP
"""

from importlib import import_module

# name -> submodule that defines it
_NAMES = {
    "ASPP": "aspp",
    "ASPPConv": "aspp",
    "ASPPPooling": "aspp",
    "DeepLabHead": "aspp",
    "CompactDeepLab": "model",
    "PyramidPoolingModule": "pooling",
    "SpatialPyramidPooling": "pooling",
    "Prediction": "infer",
    "SegmentationCancelled": "infer",
    "aspp_branch_responses": "infer",
    "estimate_diameter": "diameter",
    "predict_steps": "infer",
    "segment": "infer",
    "segment_steps": "infer",
    "segment_to_zarr": "whole_slide",
    "segment_to_zarr_steps": "whole_slide",
    "REGISTRY": "weights",
    "WeightsError": "weights",
    "load_model": "weights",
    "save_model": "weights",
    "finetune": "finetune",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
