"""Layer drop-downs default to the layers a user means, and follow added layers."""

from napari_pyramids.widgets.blend import BlendWidget
from napari_pyramids.widgets.pyramid import PyramidWidget


def open_sample(viewer, key):
    return viewer.open_sample("napari-pyramids", key)


def test_blend_defaults_on_cat_and_coffee(viewer, qtbot):
    open_sample(viewer, "blend_pair")
    widget = BlendWidget(viewer)
    assert widget.image_a.value.name == "cat"  # as the README says
    assert widget.image_b.value.name == "coffee"
    assert widget.mask.value.name == "blend mask"
    widget.run(blocking=True)
    assert widget.last_layers[0].name == "pyramid blend(cat, coffee)"


def test_blend_docked_first_follows_the_sample(viewer):
    widget = BlendWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.image_a.value is None and widget.mask.value is None
    open_sample(viewer, "blend_pair")
    assert widget.image_a.value.name == "cat"
    assert widget.image_b.value.name == "coffee"
    assert widget.mask.value.name == "blend mask"  # not an image layer


def test_a_choice_made_by_hand_is_kept_when_layers_are_added(viewer):
    open_sample(viewer, "blend_pair")
    widget = BlendWidget(viewer)
    widget.image_a.value = viewer.layers["coffee"]
    widget.image_b.value = viewer.layers["cat"]
    viewer.add_image(viewer.layers["cat"].data, name="another", rgb=True)
    assert widget.image_a.value.name == "coffee"
    assert widget.image_b.value.name == "cat"


def test_a_run_s_results_are_not_picked_as_its_next_input(viewer):
    open_sample(viewer, "astronaut")
    widget = PyramidWidget(viewer)
    widget.run(blocking=True)
    assert viewer.layers[-1].name == "astronaut gaussian octave 6"
    assert widget.image.value.name == "astronaut"


def test_results_added_from_the_console_are_not_picked_either(viewer):
    from napari_pyramids import add_pyramid

    open_sample(viewer, "astronaut")
    widget = PyramidWidget(viewer)
    add_pyramid(viewer, viewer.layers["astronaut"])
    assert widget.image.value.name == "astronaut"
    assert widget.levels.value == 7
    widget.image.value = viewer.layers[-1]  # still there to choose by hand
    assert widget.image.value.name == "astronaut gaussian octave 6"
