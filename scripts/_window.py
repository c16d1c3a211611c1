"""What the screenshot scripts share: lay the window out, save it, shrink the PNG."""

from __future__ import annotations


def save_window(viewer, path: str, size: tuple[int, int] = (1400, 860)) -> None:
    """Resize the window, fit the view, save it to ``path`` in 256 colours.

    The palette keeps the PNG small enough for the README (well under 300 KB).
    """
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    viewer.window._qt_window.resize(*size)
    for _ in range(5):  # let Qt lay out the docks before framing the view
        QApplication.processEvents()
    viewer.reset_view()
    for _ in range(20):  # and let the canvas draw
        QApplication.processEvents()
    viewer.screenshot(path, canvas_only=False, flash=False)
    shot = Image.open(path).convert("RGB")
    shot.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"saved {path}")
