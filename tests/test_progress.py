"""One progress protocol: ``progress(done, total)`` and ``cancel()`` on the public
functions, with real signatures, and the generator forms the actions use."""

import inspect

import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.progress import Cancelled, drive

RNG = np.random.default_rng(11)


def _disc(shape):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < 200).astype(float)


def test_blend_reports_each_level_and_can_be_cancelled():
    a, b = RNG.random((64, 48)), RNG.random((64, 48))
    mask = _disc((64, 48))
    calls = []
    out = npp.blend(a, b, mask, 4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(k, 8) for k in range(1, 9)]
    np.testing.assert_array_equal(out, npp.blend(a, b, mask, 4))
    with pytest.raises(Cancelled, match="after 3 of 8"):
        npp.blend(
            a,
            b,
            mask,
            4,
            cancel=lambda: len(calls) >= 11,
            progress=lambda d, t: calls.append((d, t)),
        )


def test_find_template_reports_each_octave_and_can_be_cancelled():
    """The search proper reports every octave; the probe for an exact copy
    (a template cut from the image itself) skips those between its start
    octave and octave 0, and still ends on done == total."""
    clean = RNG.random((256, 256)).astype(np.float32)
    template = clean[100:140, 60:100].copy()
    image = clean + RNG.normal(0, 0.05, clean.shape).astype(np.float32)
    calls = []
    (match,) = npp.find_template(
        image, template, progress=lambda d, t: calls.append((d, t))
    )
    assert match.position == (100, 60)
    total = calls[0][1]
    assert total > 1 and calls == [(k, total) for k in range(1, total + 1)]
    with pytest.raises(Cancelled, match=f"after 1 of {total}"):
        npp.find_template(image, template, cancel=lambda: True)
    copy = []
    npp.find_template(clean, template, progress=lambda d, t: copy.append((d, t)))
    assert copy == [(1, total), (total, total)]


def test_cancelled_write_leaves_nothing(tmp_path):
    image = RNG.random((256, 256)).astype(np.float32)
    path = tmp_path / "cut.ome.zarr"
    calls = []
    with pytest.raises(Cancelled):
        npp.write_ome_zarr(
            image,
            path,
            levels=3,
            chunks=64,
            progress=lambda d, t: calls.append((d, t)),
            cancel=lambda: True,
        )
    assert len(calls) == 1 and not path.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary left either
    written = npp.write_ome_zarr(image, path, levels=3, chunks=64)
    assert written == path and npp.read_ome_zarr(path).levels[0].shape == (256, 256)


@pytest.mark.parametrize(
    "function, names",
    [
        (npp.write_ome_zarr, {"levels", "overwrite", "chunks", "client", "version"}),
        (npp.blend, {"levels", "channel_axis", "reduce_z", "a", "backend"}),
        (npp.segment, {"diameter", "tile_size", "threshold", "axes", "link"}),
        (npp.segment_to_zarr, {"diameter", "block_size", "overwrite", "client"}),
    ],
)
def test_public_functions_show_their_parameters(function, names):
    """No parameter hides behind ``**kwargs``: help() and editors list them all."""
    parameters = inspect.signature(function).parameters
    assert names | {"progress", "cancel"} <= set(parameters)
    assert all(p.kind is not p.VAR_KEYWORD for p in parameters.values())
    with pytest.raises(TypeError, match="nonsense"):
        function(np.zeros((8, 8)), "x", nonsense=1)


def test_drive_closes_the_generator_it_cancels():
    closed = []

    def steps():
        try:
            for k in range(1, 4):
                yield k, 3
            return "done"
        finally:
            closed.append(True)

    assert drive(steps()) == "done"
    with pytest.raises(Cancelled, match="after 1 of 3"):
        drive(steps(), cancel=lambda: True)
    assert closed == [True, True]
