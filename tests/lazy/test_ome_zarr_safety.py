"""The OME-Zarr writer never loses data: what overwrite=True may replace, and
the temporary folders an interrupted write leaves behind (issue 17)."""

import os

import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.lazy import napari_io

IMG = np.arange(400, dtype=np.float32).reshape(20, 20)


def test_overwrite_replaces_a_store_this_package_wrote(tmp_path):
    target = npp.write_ome_zarr(IMG, tmp_path / "x.zarr", levels=3)
    npp.write_ome_zarr(IMG[:10, :10], target, overwrite=True, levels=2)
    assert npp.read_ome_zarr(target).levels[0].shape == (10, 10)
    v2 = npp.write_ome_zarr(IMG, tmp_path / "v2.zarr", levels=2, version="0.4")
    npp.write_ome_zarr(IMG, v2, overwrite=True, levels=3, version="0.4")
    assert sorted(os.listdir(tmp_path)) == ["v2.zarr", "x.zarr"]


def test_overwrite_replaces_an_empty_folder(tmp_path):
    (tmp_path / "e.zarr").mkdir()
    npp.write_ome_zarr(IMG, tmp_path / "e.zarr", overwrite=True, levels=2)
    assert len(npp.read_ome_zarr(tmp_path / "e.zarr").levels) == 2


@pytest.mark.parametrize("what", ["folder", "file", "store plus a file"])
def test_overwrite_refuses_what_it_did_not_write(tmp_path, what):
    target = tmp_path / "thesis"
    if what == "folder":
        target.mkdir()
        (target / "thesis.tex").write_text("five years")
    elif what == "file":
        target.write_text("five years")
    else:
        npp.write_ome_zarr(IMG, target, levels=2)
        (target / "thesis.tex").write_text("five years")
    before = sorted(p.name for p in target.rglob("*")) if target.is_dir() else None
    with pytest.raises(FileExistsError, match="not an OME-Zarr image"):
        npp.write_ome_zarr(IMG, target, overwrite=True)
    if what == "file":
        assert target.read_text() == "five years"
    else:
        assert (target / "thesis.tex").read_text() == "five years"
        assert sorted(p.name for p in target.rglob("*")) == before
    assert sorted(os.listdir(tmp_path)) == ["thesis"]  # no temporary left


def test_napari_writer_refuses_to_replace_a_folder_of_files(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an OME-Zarr image"):
        napari_io.write_pyramid(str(target), IMG, {"name": "img"})
    assert (target / "notes.txt").read_text() == "keep me"


def test_leftovers_of_an_interrupted_write_are_removed_by_the_next(tmp_path):
    dead_pid = 2**22 + 12345  # above Linux's pid_max default, never running
    leftovers = [
        ".a.zarr.1a2b3c4d.partial",  # named before temporaries carried a pid
        f".a.zarr.{dead_pid}-1a2b3c4d.partial",
        f".a.zarr.{dead_pid}-5e6f7a8b.scratch",
        f".a.zarr.{dead_pid}-9c0d1e2f.old",
    ]
    running = f".a.zarr.{os.getpid()}-00aa11bb.partial"  # a write in progress
    for name in [*leftovers, running, ".b.zarr.1a2b3c4d.partial"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "zarr.json").write_text("{}")
    npp.write_ome_zarr(IMG, tmp_path / "a.zarr", levels=2)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [running, ".b.zarr.1a2b3c4d.partial", "a.zarr"]
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale=(np.nan, 1)), "scale"),
        (dict(scale=(0, 1)), "scale"),
        (dict(scale=(-1, 1)), "scale"),
        (dict(translate=(np.inf, 0)), "translate"),
    ],
)
def test_scale_and_translate_must_be_usable(tmp_path, kwargs, match):
    # a NaN became a bare NaN in zarr.json (invalid JSON); 0 or less was accepted
    with pytest.raises(ValueError, match=match):
        npp.write_ome_zarr(IMG, tmp_path / "g.zarr", **kwargs)
    assert os.listdir(tmp_path) == []
