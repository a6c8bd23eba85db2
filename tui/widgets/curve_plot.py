"""Plots fed by messages/followers: loss curves (several named series) and a length histogram."""

from __future__ import annotations

from textual_plotext import PlotextPlot

COLORS = ("cyan", "orange", "green", "magenta", "yellow", "red")


class CurvePlot(PlotextPlot):
    """Named (steps, values) series on one plot; `set_series` replaces them and redraws."""

    def __init__(self, title: str, ylabel: str = "loss", *, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.title = title
        self.ylabel = ylabel
        self.series: dict[str, tuple[list, list]] = {}

    def on_mount(self) -> None:
        self.replot()

    @property
    def point_count(self) -> int:
        return sum(len(xs) for xs, _ in self.series.values())

    def set_series(self, series: dict[str, tuple[list, list]]) -> None:
        new = {name: (list(xs), list(ys)) for name, (xs, ys) in series.items() if xs}
        if new != self.series:
            self.series = new
            self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.title if self.series else f"{self.title}: waiting for the first report")
        plt.xlabel("step")
        plt.ylabel(self.ylabel)
        for i, (name, (xs, ys)) in enumerate(self.series.items()):
            plt.plot(xs, ys, label=name, marker="braille", color=COLORS[i % len(COLORS)])
        if not self.series:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        else:
            plt.xlim(None, None)
            plt.ylim(None, None)
        self.refresh()


class HistogramPlot(PlotextPlot):
    """Token lengths per row, with the max sequence length as a vertical line."""

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.lengths: list[int] = []
        self.limit: int | None = None

    def on_mount(self) -> None:
        self.replot()

    def set_lengths(self, lengths: list[int], limit: int | None) -> None:
        self.lengths, self.limit = list(lengths), limit
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("token length per row" if self.lengths else "token lengths: choose a model (tokenizer)")
        plt.xlabel("tokens")
        if self.lengths:
            plt.hist(self.lengths, bins=min(30, max(5, len(set(self.lengths)))), color="cyan")
            if self.limit:
                plt.vline(self.limit, "red")
        self.refresh()
