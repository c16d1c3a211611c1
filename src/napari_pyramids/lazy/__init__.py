"""Out-of-core pyramids: dask + zarr, OME-Zarr read/write, dask.distributed.

Everything here imports dask (and zarr) at module level, so nothing in this
package is imported by ``import napari_pyramids``; the core functions dispatch
here on first use with a dask or zarr array.
"""
