"""Widgets, one thin module each: controls -> action settings -> job -> layers."""
