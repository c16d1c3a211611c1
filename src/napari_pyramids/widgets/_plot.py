"""A live line plot for widgets: curves that grow a point at a time (pyqtgraph)."""

from __future__ import annotations


class LivePlot:
    """A pyqtgraph plot on napari's dark canvas colour, with named curves.

    Each keyword names a curve: ``(legend name, colour, line width)`` and
    optionally a marker symbol for its points (``"o"``). :attr:`curves` holds
    each as ``(item, xs, ys)``; :attr:`native` is the Qt widget to lay out.
    """

    def __init__(self, x_label: str, **curves: tuple):
        import pyqtgraph as pg

        self.native = pg.PlotWidget()
        self.native.setMinimumHeight(160)
        self.native.setBackground("#262930")  # napari's dark canvas colour
        self.native.addLegend(offset=(5, 5))
        self.native.setLabel("bottom", x_label)
        self.curves = {}
        for key, (name, colour, width, *symbol) in curves.items():
            marks = {"symbol": symbol[0], "symbolSize": 5} if symbol else {}
            pen = pg.mkPen(colour, width=width)
            item = self.native.plot([], [], pen=pen, name=name, **marks)
            self.curves[key] = (item, [], [])

    def add(self, x: float, **values: float | None) -> None:
        """Add the point ``(x, value)`` to each curve named, and redraw it; a
        value of None adds nothing to its curve."""
        for key, y in values.items():
            if y is None:
                continue
            item, xs, ys = self.curves[key]
            xs.append(x)
            ys.append(y)
            item.setData(xs, ys)

    def clear(self) -> None:
        """Empty every curve (a new run starts)."""
        for item, xs, ys in self.curves.values():
            xs.clear()
            ys.clear()
            item.setData([], [])
