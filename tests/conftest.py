"""Test-wide settings.

Widget tests need an OpenGL canvas. Under a display (``xvfb-run``, as the
Makefile runs the suite) Qt uses it; without one, Qt falls back to the
offscreen platform, which suffices for everything but the canvas.
"""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
