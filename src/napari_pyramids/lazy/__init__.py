"""Out-of-core pyramids: dask + zarr, OME-Zarr read/write, dask.distributed.

Everything here imports dask (and zarr) at module level, so nothing in this
package is imported by ``import napari_pyramids``; the public pyramid functions
(:mod:`napari_pyramids.dispatch`) send dask and zarr arrays here on first use.
It builds on ``core``'s public functions only.
"""
