"""Whole-slide segmentation: block by block on disk, the in-memory labels."""

import inspect

import numpy as np
import pytest
import zarr

pytest.importorskip("torch")

import dask.array as da  # noqa: E402

import napari_pyramids as npp  # noqa: E402
from napari_pyramids.nn import SegmentationCancelled, load_model, segment  # noqa: E402
from napari_pyramids.nn.synthetic import make_nuclei_image  # noqa: E402
from napari_pyramids.nn.whole_slide import (  # noqa: E402
    segment_slide_steps,
    segment_to_zarr_steps,
)

#: Small tiles and blocks, so tile and block borders cross many nuclei.
TILING = {"tile_size": 64, "overlap": 16, "context_size": 64, "device": "cpu"}
BLOCK = 96


@pytest.fixture(scope="module")
def model():
    return load_model("nuclei")


@pytest.fixture(scope="module")
def image():
    picture, _ = make_nuclei_image((230, 250), np.random.default_rng(5))
    return (picture.astype(np.float64) / picture.max() * 4000).astype(np.uint16)


def as_zarr(array, path, chunks=(70, 70)):
    stored = zarr.create_array(
        store=str(path), shape=array.shape, dtype=array.dtype, chunks=chunks
    )
    stored[...] = array
    return stored


def read_labels(path, level=0):
    return np.asarray(npp.read_ome_zarr(path).levels[level])


def assert_same_up_to_ids(want, got):
    """Equal partitions: one id of ``got`` per id of ``want``, background kept."""
    assert got.shape == want.shape
    np.testing.assert_array_equal(got > 0, want > 0)
    pairs = np.unique(np.stack([want.ravel(), got.ravel()]), axis=1)
    assert len(pairs[0]) == len(np.unique(want)) == len(np.unique(got))


def crossing_ids(labels, side):
    """Ids of nuclei that have pixels on both sides of a block border."""
    ids = set()
    for axis in (0, 1):
        for cut in range(side, labels.shape[axis], side):
            before = np.take(labels, cut - 1, axis=axis)
            after = np.take(labels, cut, axis=axis)
            ids |= set(before[(before == after) & (before > 0)].tolist())
    return ids


@pytest.mark.parametrize(
    ("diameter", "block"),
    [(20.0, BLOCK), (40.0, BLOCK), (55.0, BLOCK), (12.0, BLOCK), (90.0, 64)],
)
def test_labels_equal_the_in_memory_path_across_block_borders(
    model, image, tmp_path, diameter, block
):
    """On the image grid (20 px), octave 1 (40 px), octave 1 resampled (55 px),
    upsampled (12 px), and with seeds growing further than a block (90 px)."""
    want = segment(image, model, diameter=diameter, **TILING)
    calls = []
    out = npp.segment_to_zarr(
        as_zarr(image, tmp_path / "image.zarr"),
        tmp_path / "labels.zarr",
        model,
        diameter=diameter,
        block_size=block,
        progress=lambda done, total: calls.append((done, total)),
        **TILING,
    )
    total = calls[0][1]
    assert calls == [(done, total) for done in range(total + 1)]
    got = read_labels(out)
    assert_same_up_to_ids(want, got)
    assert len(crossing_ids(want, block)) >= 3  # nuclei cut by block borders
    # ids are numbered as in memory: the same labels, not only the same partition
    np.testing.assert_array_equal(got, want)
    assert zarr.open_group(str(out), mode="r").attrs["napari_pyramids"]["nuclei"] == (
        want.max()
    )


def test_dask_input_and_the_label_pyramid(model, image, tmp_path):
    lazy = da.from_array(image, chunks=(57, 83))
    out = npp.segment_to_zarr(
        lazy, tmp_path / "labels.zarr", model, diameter=20, block_size=128, **TILING
    )
    want = segment(image, model, diameter=20, **TILING)
    pyramid = npp.read_ome_zarr(out)
    assert pyramid.axes == ("y", "x") and pyramid.translate == (0.0, 0.0)
    np.testing.assert_array_equal(np.asarray(pyramid.levels[0]), want)
    for k, level in enumerate(pyramid.levels):
        # nearest sampling, every 2**k-th sample from 0: ids stay ids
        np.testing.assert_array_equal(np.asarray(level), want[:: 2**k, :: 2**k])
    assert len(pyramid.levels) == npp.pyramid_depth(image.shape)


def test_progress_and_cancel_leave_no_output(model, image, tmp_path):
    source = as_zarr(image, tmp_path / "image.zarr")
    calls = []

    def cancel():
        return len(calls) >= 4

    with pytest.raises(SegmentationCancelled):
        npp.segment_to_zarr(
            source,
            tmp_path / "labels.zarr",
            model,
            diameter=20,
            block_size=BLOCK,
            progress=lambda done, total: calls.append((done, total)),
            cancel=cancel,
            **TILING,
        )
    assert calls[0][0] == 0 and calls[-1][0] < calls[-1][1]
    # neither the labels nor a temporary or scratch folder is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.zarr"]
    steps = segment_to_zarr_steps(
        source, tmp_path / "labels.zarr", model, diameter=20, block_size=BLOCK, **TILING
    )
    seen = [next(steps) for _ in range(3)]
    steps.close()
    assert [done for done, _ in seen] == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.zarr"]


def test_existing_output_is_kept_unless_overwrite(model, image, tmp_path):
    small = image[:100, :90]
    out = tmp_path / "labels.zarr"
    npp.segment_to_zarr(small, out, model, diameter=20, **TILING)
    first = read_labels(out)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        npp.segment_to_zarr(small[::-1], out, model, diameter=20, **TILING)
    np.testing.assert_array_equal(read_labels(out), first)
    npp.segment_to_zarr(small[::-1], out, model, diameter=20, overwrite=True, **TILING)
    np.testing.assert_array_equal(
        read_labels(out), segment(small[::-1], model, diameter=20, **TILING)
    )
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an OME-Zarr image"):
        npp.segment_to_zarr(small, other, model, diameter=20, overwrite=True, **TILING)
    assert (other / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("array", "out", "error", "match"),
    [
        (np.zeros((3, 40, 40), np.uint16), "o.zarr", ValueError, "one 2-D image"),
        (np.zeros((40, 40, 3), np.uint8), "o.zarr", ValueError, r"image\[\.\.\., 2\]"),
        (np.zeros((40, 40), bool), "o.zarr", ValueError, "integer or float"),
        (np.zeros((0, 40), np.uint8), "o.zarr", ValueError, "empty"),
        ([[1, 2], [3, 4]], "o.zarr", TypeError, "zarr, dask or numpy"),
        (np.zeros((40, 40), np.uint8), 3, TypeError, "path of the .zarr folder"),
        (np.zeros((40, 40), np.uint8), "missing/o.zarr", FileNotFoundError, "exist"),
    ],
)
def test_bad_input_is_a_clear_error(model, tmp_path, array, out, error, match):
    target = tmp_path / out if isinstance(out, str) else out
    with pytest.raises(error, match=match):
        npp.segment_to_zarr(array, target, model, diameter=20, **TILING)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("diameter", [20.0, 40.0, 12.0])
def test_non_finite_values_are_refused_before_any_work(
    model, image, tmp_path, diameter
):
    bad = image.astype(np.float32)
    bad[50, 60] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        npp.segment_to_zarr(
            bad, tmp_path / "o.zarr", model, diameter=diameter, **TILING
        )
    assert not any(tmp_path.iterdir())


def test_the_slide_steps_show_the_options_they_pass_on(tmp_path):
    """segment_slide_steps lists segment_to_zarr_steps' options (not overwrite:
    it always writes a new folder) and refuses any other keyword."""
    parameters = inspect.signature(segment_slide_steps).parameters
    assert {"name", "folder", "diameter", "block_size", "client"} <= set(parameters)
    assert "overwrite" not in parameters
    assert all(p.kind is not p.VAR_KEYWORD for p in parameters.values())
    with pytest.raises(TypeError, match="overwrite"):
        segment_slide_steps(np.zeros((8, 8)), folder=tmp_path, overwrite=True)
    assert list(tmp_path.iterdir()) == []
