"""Widgets, one module each and thin: gather inputs, call core, return layers."""
