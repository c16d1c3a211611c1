"""The pyramid functions of the public API, for numpy and out-of-core images alike.

``core`` computes pyramids of numpy arrays and knows nothing of dask;
``lazy`` builds them block by block from ``core``'s public functions. This
module sits above both and sends each image to its engine: a dask or zarr
array (:func:`~napari_pyramids.core.checks.is_lazy`) gets lazy dask levels,
anything else numpy levels. dask is imported only when such an array comes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from napari_pyramids.core import pyramid as core
from napari_pyramids.core.checks import is_lazy

__all__ = ["gaussian_pyramid", "iter_pyramid", "laplacian_pyramid"]


def _either_engine(in_memory: Callable) -> Callable:
    """``in_memory`` for numpy input, its namesake in ``lazy.pyramid`` for dask/zarr.

    The result keeps ``in_memory``'s name, docstring and signature.
    """

    @functools.wraps(in_memory)
    def pyramid(image, *args, **kwargs):
        if is_lazy(image):
            from napari_pyramids.lazy import pyramid as lazy

            return getattr(lazy, in_memory.__name__)(image, *args, **kwargs)
        return in_memory(image, *args, **kwargs)

    return pyramid


gaussian_pyramid = _either_engine(core.gaussian_pyramid)
laplacian_pyramid = _either_engine(core.laplacian_pyramid)
iter_pyramid = _either_engine(core.iter_pyramid)
