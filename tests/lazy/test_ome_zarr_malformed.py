"""Malformed OME-Zarr stores: read_ome_zarr names the problem in a ValueError and
napari's reader hook declines them (issue 17)."""

import json

import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.lazy import napari_io

IMG = np.arange(400, dtype=np.float32).reshape(20, 20)


def _attrs_file(store):
    return store / ("zarr.json" if (store / "zarr.json").is_file() else ".zattrs")


def _edit_multiscales(store, change):
    path = _attrs_file(store)
    meta = json.loads(path.read_text())
    attrs = meta["attributes"]["ome"] if path.name == "zarr.json" else meta
    change(attrs)
    path.write_text(json.dumps(meta))


def _no_multiscales(attrs):
    attrs["multiscales"] = []


def _no_axes(attrs):
    del attrs["multiscales"][0]["axes"]


def _three_axes(attrs):
    attrs["multiscales"][0]["axes"].append({"name": "z", "type": "space"})


def _short_scale(attrs):
    attrs["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"] = [
        1
    ]


def _scale_zero(attrs):
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [
        0,
        1,
    ]


CASES = {
    "multiscales is empty": (_no_multiscales, "multiscales"),
    "no axes": (_no_axes, "axes"),
    "axes of the wrong length": (_three_axes, "axes"),
    "a scale of the wrong length": (_short_scale, "scale"),
    "a scale of 0": (_scale_zero, "scale"),
}


@pytest.fixture(params=["0.4", "0.5"])
def store(request, tmp_path):
    return npp.write_ome_zarr(IMG, tmp_path / "s.zarr", levels=3, version=request.param)


def _refused(store, match):
    with pytest.raises(ValueError, match=match):
        npp.read_ome_zarr(store)
    assert napari_io.get_reader(str(store)) is None


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_metadata_is_named(store, case):
    change, match = CASES[case]
    _edit_multiscales(store, change)
    _refused(store, match)


def test_attributes_that_are_a_list(store):
    path = _attrs_file(store)
    if path.name == "zarr.json":
        meta = json.loads(path.read_text())
        meta["attributes"] = ["not", "a", "dict"]
        path.write_text(json.dumps(meta))
    else:
        path.write_text("[1, 2, 3]")
    _refused(store, "not a readable zarr group|not an OME-Zarr")


def test_a_missing_level_is_named(store):
    import shutil

    shutil.rmtree(store / "s1")
    _refused(store, "s1")


def test_a_corrupt_level_is_named(store):
    meta = (
        store / "s2" / ("zarr.json" if (store / "zarr.json").is_file() else ".zarray")
    )
    meta.write_text("{ not json")
    _refused(store, "s2")


def test_a_good_store_still_reads(store):
    assert len(npp.read_ome_zarr(store).levels) == 3
    assert napari_io.get_reader(str(store)) is napari_io.read_pyramid
