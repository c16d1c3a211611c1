"""napari-pyramids: image pyramids in napari, and the same tools for scripts.

The public API (a contract: tests, docs and users depend on these names)::

    import napari_pyramids as npp
    npp.gaussian_pyramid(image, levels=None, *, channel_axis=None, ...)
    npp.laplacian_pyramid(image, levels=None, *, channel_axis=None, ...)
    npp.reconstruct(laplacian)
    npp.reduce(image) / npp.expand(image, shape)
    npp.equal_size_levels(pyramid)
    npp.blend(image_a, image_b, mask, levels=None, *, channel_axis=None, ...)
    npp.feather_blend(image_a, image_b, mask, *, width=16.0, ...)
    npp.iter_blend(image_a, image_b, mask, ...)  # yields (done, total); returns blend
    npp.cut_blend(image_a, image_b, mask, *, channel_axis=None)
    npp.seam_energy(image, mask, *, channel_axis=None, width=1)
    npp.find_template(image, template, *, max_matches=1, ...) -> list[Match]
    npp.zncc_map(image, template)  # exhaustive ZNCC, like skimage's match_template
    npp.add_pyramid(viewer, layer, kind="gaussian", output="octaves", ...)
    npp.write_ome_zarr(image_or_pyramid, path, *, levels=None, overwrite=False, ...)
    npp.read_ome_zarr(path)    # lazy levels + axes, scale, translate
    npp.write_ome_zarr_labels(labels, path, name="nuclei")  # NGFF labels/ group
    npp.read_ome_zarr_labels(path)            # {name: lazy label pyramid}
    npp.segment(image, model="nuclei", *, diameter=None, ...)  # nuclei labels (torch)
    npp.segment_to_zarr(zarr_or_dask_image, out, ...)  # whole slides, block by block
    npp.estimate_diameter(image)              # typical nucleus diameter, pixels
    npp.load_model(name_or_path)              # a registered model or weights file
    npp.save_model(model, path, **metadata)   # safetensors, read by load_model
    npp.finetune([(image, labels), ...], base="nuclei", time_limit=180)
    npp.measure(labels, image, scale=...)     # per-nucleus table (pandas)
    npp.nn.ASPP, npp.nn.SpatialPyramidPooling, npp.nn.PyramidPoolingModule
    # gaussian_pyramid / laplacian_pyramid given a dask or zarr array return dask arrays
    # blend, find_template, segment, write_ome_zarr, finetune take progress(done,
    # total) and cancel() -> bool callbacks (napari_pyramids.progress); iter_* are
    # their generators; finetune also takes on_loss(step, loss), on_score(step, ap50)

``import napari_pyramids`` stays light: torch, Qt and napari load only when a
name that needs them is first used (module ``__getattr__``, PEP 562).
"""

from importlib import import_module

from napari_pyramids.core.blend import (
    blend,
    cut_blend,
    feather_blend,
    iter_blend,
    seam_energy,
)
from napari_pyramids.core.pyramid import (
    equal_size_levels,
    expand,
    pyramid_depth,
    reconstruct,
    reduce,
)
from napari_pyramids.core.search import Match, OctaveTrace, find_template, zncc_map
from napari_pyramids.dispatch import gaussian_pyramid, iter_pyramid, laplacian_pyramid

__version__ = "0.1.0"

# name -> module that defines it; imported on first access only.
_LAZY = {
    "add_pyramid": "napari_pyramids.console",
    "write_ome_zarr": "napari_pyramids.lazy.ome_zarr",
    "read_ome_zarr": "napari_pyramids.lazy.ome_zarr",
    "write_ome_zarr_labels": "napari_pyramids.lazy.ome_zarr_labels",
    "read_ome_zarr_labels": "napari_pyramids.lazy.ome_zarr_labels",
    "segment": "napari_pyramids.nn.infer",
    "segment_to_zarr": "napari_pyramids.nn.whole_slide",
    "estimate_diameter": "napari_pyramids.nn.infer",
    "load_model": "napari_pyramids.nn.weights",
    "save_model": "napari_pyramids.nn.weights",
    "finetune": "napari_pyramids.nn.finetune",
    "measure": "napari_pyramids.core.measure",
}
# subpackages imported on first access (torch): npp.nn.ASPP, ...
_LAZY_MODULES = {"nn": "napari_pyramids.nn"}

__all__ = [
    "blend",
    "cut_blend",
    "feather_blend",
    "iter_blend",
    "seam_energy",
    "Match",
    "OctaveTrace",
    "equal_size_levels",
    "expand",
    "find_template",
    "gaussian_pyramid",
    "iter_pyramid",
    "laplacian_pyramid",
    "pyramid_depth",
    "reconstruct",
    "reduce",
    "zncc_map",
    *_LAZY,
    *_LAZY_MODULES,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        return import_module(_LAZY_MODULES[name])
    raise AttributeError(f"module 'napari_pyramids' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
