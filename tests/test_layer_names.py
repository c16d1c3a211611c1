"""Result layer names say each word once and stay short enough for the layer list."""

import numpy as np

from napari_pyramids.actions import pyramid, run_to_completion, segment
from napari_pyramids.layers import NAME_SOURCE_CHARS, Source, layer_name
from napari_pyramids.nn.synthetic import make_nuclei_image


def test_a_word_the_source_ends_with_is_not_repeated():
    assert layer_name("synthetic nuclei", "nuclei labels") == "synthetic nuclei labels"
    assert layer_name("cells", "nuclei labels") == "cells nuclei labels"
    assert layer_name("nuclei", "nuclei") == "nuclei nuclei"  # nothing else to say


def test_long_source_names_are_cut_and_the_end_kept():
    name = layer_name("a very long microscope file name", "laplacian octave 2")
    assert name.endswith("… laplacian octave 2")
    assert len(name.split("…")[0]) == NAME_SOURCE_CHARS - 1


def test_segment_on_the_nuclei_sample_names_its_labels_once():
    image, _ = make_nuclei_image((128, 128), np.random.default_rng(5))
    source = Source(image, "synthetic nuclei", (1.0, 1.0), (0.0, 0.0))
    settings = segment.SegmentSettings(diameter=12.0, branches=True)
    result = run_to_completion(segment.run(source, settings))
    names = [meta["name"] for _, meta, _ in result.layers]
    assert names[-1] == "synthetic nuclei labels"
    assert "synthetic nuclei ASPP rate 6" in names


def test_pyramid_residual_name_fits_the_layer_list():
    source = Source(np.zeros((64, 64), np.float32), "astronaut", (1.0, 1.0), (0, 0))
    settings = pyramid.PyramidSettings(kind="laplacian", levels=3)
    result = run_to_completion(pyramid.run(source, settings))
    names = [meta["name"] for _, meta, _ in result.layers]
    assert names == [
        "astronaut laplacian octave 0",
        "astronaut laplacian octave 1",
        "astronaut residual octave 2",
    ]
    assert max(map(len, names)) <= 28
