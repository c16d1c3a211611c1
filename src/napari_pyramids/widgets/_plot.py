"""A live line plot for widgets: curves that grow a point at a time (pyqtgraph)."""

from __future__ import annotations


class LivePlot:
    """A pyqtgraph plot on napari's dark canvas colour, with named curves.

    ``curves`` maps each curve's key to its legend name, colour, line width
    and any other pyqtgraph ``plot()`` options (a marker symbol, say);
    :attr:`curves` holds each one as ``(item, xs, ys)``. :attr:`native` is the
    Qt widget to add to a layout.
    """

    def __init__(self, x_label: str, curves: dict[str, dict]):
        import pyqtgraph as pg

        self.native = pg.PlotWidget()
        self.native.setMinimumHeight(160)
        self.native.setBackground("#262930")  # napari's dark canvas colour
        self.native.addLegend(offset=(5, 5))
        self.native.setLabel("bottom", x_label)
        self.curves = {}
        for key, options in curves.items():
            options = dict(options)
            pen = pg.mkPen(options.pop("color"), width=options.pop("width"))
            self.curves[key] = (self.native.plot([], [], pen=pen, **options), [], [])

    def add(self, key: str, x: float, y: float) -> None:
        """Add the point ``(x, y)`` to curve ``key`` and redraw it."""
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
