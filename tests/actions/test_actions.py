"""The actions without a GUI: settings own defaults, choices, checks and help;
``run`` checks at once and its job yields steps and returns a Result."""

import dataclasses

import numpy as np
import pytest

import napari_pyramids as npp
from napari_pyramids.actions import (
    Result,
    Step,
    blend,
    help_texts,
    pyramid,
    run_to_completion,
    search,
    segment,
    train,
)
from napari_pyramids.layers import Source

SETTINGS = [
    pyramid.PyramidSettings,
    blend.BlendSettings,
    search.SearchSettings,
    segment.SegmentSettings,
    train.TrainSettings,
]
RNG = np.random.default_rng(3)


def _source(data, name="img", channel_axis=None):
    spatial = data.ndim - (channel_axis is not None)
    return Source(data, name, (0.5,) * spatial, (3.0,) * spatial, channel_axis)


@pytest.mark.parametrize("settings_type", SETTINGS)
def test_every_setting_says_what_it_does(settings_type):
    texts = help_texts(settings_type)
    assert set(texts) == {f.name for f in dataclasses.fields(settings_type)}
    assert all(len(text.split()) >= 5 for text in texts.values()), texts
    settings_type()  # the defaults are valid settings


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: pyramid.PyramidSettings(kind="median"), "kind must be one of"),
        (lambda: pyramid.PyramidSettings(output="tiles"), "output must be one of"),
        (lambda: blend.BlendSettings(method="average"), "method must be one of"),
        (lambda: segment.SegmentSettings(threshold=1.0), "between 0 and 1"),
        (lambda: segment.SegmentSettings(diameter=-3.0), "must be positive"),
        (lambda: segment.SegmentSettings(axes="zyx", branches=True), "2-D images"),
        (lambda: segment.SegmentSettings(axes="xyz"), "axes must be one of"),
        (lambda: train.TrainSettings(name=" "), "name"),
        (lambda: train.TrainSettings(time_limit=0), "must be positive"),
    ],
)
def test_bad_settings_are_refused_when_made(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_pyramid_action_gives_the_widgets_layers_without_a_viewer():
    image = RNG.random((64, 48), dtype=np.float32)
    job = pyramid.run(_source(image), pyramid.PyramidSettings(levels=3))
    assert job.description == "Gaussian pyramid of img"
    steps = []
    result = run_to_completion(job, steps.append)
    assert isinstance(result, Result) and result.summary == ""
    assert [s.done for s in steps] == [1, 2, 3] and steps[0].total == 3
    names = [meta["name"] for _, meta, _ in result.layers]
    assert names == ["img gaussian octave 1", "img gaussian octave 2"]
    for k, (data, meta, kind) in enumerate(result.layers, start=1):
        assert kind == "image" and meta["scale"] == (0.5 * 2**k,) * 2
        np.testing.assert_array_equal(data, npp.gaussian_pyramid(image, 3)[k])


def test_run_checks_before_any_step():
    with pytest.raises(ValueError, match="levels=1 is the image itself"):
        pyramid.run(_source(np.zeros((32, 32))), pyramid.PyramidSettings(levels=1))
    a, b = _source(np.zeros((32, 32))), _source(np.zeros((32, 30)))
    mask = _source(np.ones((32, 32)))
    with pytest.raises(ValueError, match="shape"):
        blend.run(a, b, mask, blend.BlendSettings())


def test_a_job_is_a_generator_of_steps_that_returns_its_result():
    """``result = yield from job``: how a napari worker (or any generator) runs it."""
    a = _source(RNG.random((64, 64), dtype=np.float32), "a")
    b = _source(RNG.random((64, 64), dtype=np.float32), "b")
    mask = _source(np.zeros((64, 64), np.float32), "m")
    job = blend.run(a, b, mask, blend.BlendSettings(levels=3))

    def worker():
        return (yield from job)

    steps, gen = [], worker()
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as done:
        result = done.value
    assert all(isinstance(s, Step) for s in steps) and steps[-1].done == 6
    ((data, meta, _),) = result.layers
    assert meta["name"] == "pyramid blend(a, b)"
    np.testing.assert_allclose(data, b.data, atol=1e-6)  # mask 0: all image b


def test_search_result_carries_the_matches_and_the_status_line():
    image = RNG.random((200, 200)).astype(np.float32)
    settings = search.SearchSettings(compare_exhaustive=False, show_trace=False)
    result = run_to_completion(
        search.run(_source(image), image[50:90, 120:160], settings)
    )
    assert [m.position for m in result.matches] == [(50, 120)]
    assert result.summary.startswith("1 match(es), best ZNCC 1.000")
    assert [kind for _, _, kind in result.layers] == ["shapes", "points"]  # boxes under


def test_segment_action_takes_a_dask_plane_block_by_block(tmp_path, monkeypatch):
    """A lazy plane is never loaded: its labels are a lazy pyramid on disk,
    equal to the in-memory segmentation; maps (made in memory) are refused."""
    pytest.importorskip("torch")
    da = pytest.importorskip("dask.array")
    import tempfile

    from napari_pyramids.nn.synthetic import make_nuclei_image

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    image, _ = make_nuclei_image((150, 170), np.random.default_rng(4))
    source = _source(da.from_array(image, chunks=64), "slide")
    with pytest.raises(ValueError, match="untick them"):
        segment.run(source, segment.SegmentSettings(branches=True))
    settings = segment.SegmentSettings(tile_size=128, device="cpu")
    result = run_to_completion(segment.run(source, settings))
    ((levels, meta, kind),) = result.layers
    assert kind == "labels" and meta["multiscale"] and meta["scale"] == (0.5, 0.5)
    want = npp.segment(image, tile_size=128, device="cpu")
    np.testing.assert_array_equal(np.asarray(levels[0]), want)
    (folder,) = (tmp_path / "napari-pyramids-labels").iterdir()
    assert result.count == want.max() and str(folder) in result.summary
