"""Settings napari keeps between sessions (npe2 ``contributions.configurations``).

napari saves them to ``<config dir>/napari-pyramids.yaml`` and shows them in its
preferences. Where napari has no settings registered for the plugin (its
manifest not loaded by napari's plugin manager), widgets work with their
built-in defaults and remember nothing.
"""

from __future__ import annotations

PLUGIN = "napari-pyramids"


def plugin_settings(section: str):
    """The settings section ``section`` of napari-pyramids, or None if unavailable."""
    from napari.settings import get_plugin_settings  # napari >= 0.9

    try:
        return getattr(get_plugin_settings(PLUGIN), section)
    except (KeyError, AttributeError):  # plugin or section not registered
        return None


def remember(section_name: str, widget, key: str, valid=None) -> None:
    """Start ``widget`` at the saved ``key`` and save every change the user makes.

    ``valid`` (optional) tells whether a saved value can be used here (a GPU
    chosen on another machine, say); otherwise the widget keeps its default.
    """
    section = plugin_settings(section_name)
    if section is None:
        return
    saved = getattr(section, key)
    if valid is None or valid(saved):
        widget.value = saved
    widget.changed.connect(lambda value: setattr(section, key, value))
