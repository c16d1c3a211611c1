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


def test_settings_carry_what_a_control_needs():
    """Label, range and step live with the setting; a GUI reads them from there."""
    from napari_pyramids.actions import field_of, setting

    tile = field_of(segment.SegmentSettings, "tile_size").metadata
    assert (tile["label"], tile["limits"], tile["step"]) == (
        "tile size",
        (128, 8192),
        64,
    )
    assert field_of(pyramid.PyramidSettings, "min_size").metadata.keys() == {"help"}
    with pytest.raises(KeyError, match="no setting 'tiles'"):
        field_of(segment.SegmentSettings, "tiles")
    # a range is a hint for a control, not a check: scripts may go beyond it
    assert segment.SegmentSettings(tile_size=64).tile_size == 64
    assert setting(3, "a number of things", label="n").metadata == {
        "help": "a number of things",
        "label": "n",
    }


def test_octaves_made_is_what_run_builds():
    source = _source(np.zeros((100, 64), np.float32))
    settings = pyramid.PyramidSettings()
    n_levels = pyramid.octaves_made(source, settings)
    assert n_levels == 4  # 64 -> 32 -> 16 -> 8: the last side of at least 8 px
    result = run_to_completion(pyramid.run(source, settings))
    assert len(result.layers) == n_levels - 1  # Gaussian octave 0 is the image


def test_axes_and_units_offered_for_a_layer():
    plane, volume = _source(np.zeros((8, 8))), _source(np.zeros((3, 8, 8)))
    assert segment.axes_choices(None) == (["yx"], "yx")
    assert segment.axes_choices(plane) == (["yx"], "yx")
    assert segment.axes_choices(volume) == (["zyx", "tyx"], "zyx")
    movie = Source(np.zeros((3, 8, 8)), "m", (1.0,) * 3, (0.0,) * 3, None)
    movie = dataclasses.replace(movie, axes_meta={"axis_labels": ("t", "y", "x")})
    assert segment.axes_choices(movie) == (["zyx", "tyx"], "tyx")
    rgb = _source(np.zeros((8, 8, 3)), channel_axis=-1)
    assert not segment.is_stack(rgb) and segment.is_stack(volume)
    assert segment.unit_choices(None) == segment.unit_choices(plane) == ["px"]
    microns = dataclasses.replace(plane, axes_meta={"units": ("um", "um")})
    assert segment.unit_choices(microns) == ["px", "um"]
    assert segment.diameter_in_pixels(10.0, "um", microns) == 20.0  # 0.5 um pixels


def test_a_checkpoint_choice_needs_an_existing_file(tmp_path):
    assert segment.model_setting("nuclei") == "nuclei"
    with pytest.raises(ValueError, match="choose a weights file"):
        segment.model_setting(segment.CHECKPOINT, None)
    with pytest.raises(ValueError, match="choose a weights file"):
        segment.model_setting(segment.CHECKPOINT, tmp_path / "missing.safetensors")
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(b"")
    assert segment.model_setting(segment.CHECKPOINT, weights) == str(weights)
    assert segment.model_names()[0] == "nuclei"


def test_measurements_are_written_from_the_last_labels_layer(tmp_path):
    layers = pytest.importorskip("napari.layers")
    with pytest.raises(ValueError, match="segment an image first"):
        segment.save_measurements([], tmp_path / "m.csv")
    labels = np.zeros((4, 4), np.uint8)
    first = layers.Labels(labels, features={"label": [1]})
    last = layers.Labels(labels, features={"label": [1, 2]})
    added = [first, last, layers.Image(np.zeros((4, 4)))]
    path = segment.save_measurements(added, tmp_path / "m.csv")
    assert path.read_text().splitlines() == ["label", "1", "2"]


def test_training_takes_one_grey_plane():
    plane = RNG.random((16, 16))
    out = train.grey_plane(_source(plane))
    np.testing.assert_array_equal(out, plane)
    with pytest.raises(ValueError, match="not one 2-D grey image"):
        train.grey_plane(_source(np.zeros((16, 16, 3)), "rgb", channel_axis=-1))
    with pytest.raises(ValueError, match="not one 2-D grey image"):
        train.grey_plane(_source(np.zeros((4, 16, 16)), "stack"))
