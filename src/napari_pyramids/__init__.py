"""napari-pyramids: image pyramids in napari, and the same tools for scripts.

The public API (a contract: tests, docs and users depend on these names)::

    import napari_pyramids as npp
    npp.gaussian_pyramid(image, levels=None, *, channel_axis=None, ...)
    npp.laplacian_pyramid(image, levels=None, *, channel_axis=None, ...)
    npp.reconstruct(laplacian)
    npp.reduce(image) / npp.expand(image, shape)
    npp.equal_size_levels(pyramid)
    npp.find_template(image, template, *, max_matches=1, ...) -> list[Match]
    npp.zncc_map(image, template)  # exhaustive ZNCC, like skimage's match_template
    npp.add_pyramid(viewer, layer, kind="gaussian", output="octaves", ...)

``import napari_pyramids`` stays light: torch, Qt and napari load only when a
name that needs them is first used (module ``__getattr__``, PEP 562).
"""

from importlib import import_module

from napari_pyramids.core.pyramid import (
    equal_size_levels,
    expand,
    gaussian_pyramid,
    iter_pyramid,
    laplacian_pyramid,
    pyramid_depth,
    reconstruct,
    reduce,
)
from napari_pyramids.core.search import Match, OctaveTrace, find_template, zncc_map

__version__ = "0.1.0"

# name -> module that defines it; imported on first access only.
_LAZY = {
    "add_pyramid": "napari_pyramids.console",
}

__all__ = [
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
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'napari_pyramids' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
