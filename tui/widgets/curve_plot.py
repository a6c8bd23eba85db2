"""Plots fed by messages/followers: loss curves (several named series) and a length histogram.
Both draw integer x ticks that fit the width, and the curve plot puts its legend on lines
below the canvas (plotext's own legend sits on top of the curves), as many as its names need."""

from __future__ import annotations

import math

from rich.text import Text
from textual_plotext import PlotextPlot

# (plotext 256-colour code, the same colour for Rich): the legend matches the lines
COLORS = ((51, "color(51)"), (208, "color(208)"), (46, "color(46)"), (201, "color(201)"),
          (226, "color(226)"), (196, "color(196)"))
TICK_SPACING = 10  # columns per x tick label at least


def integer_ticks(lo: float, hi: float, width: int) -> list[int]:
    """Whole-number ticks from lo to hi, as many as fit `width` columns, on a 1-2-5 grid."""
    lo, hi = math.floor(lo), math.ceil(hi)
    if hi <= lo:
        return [lo]
    most = max(2, width // TICK_SPACING)
    step = 1
    while (hi - lo) / step > most - 1:
        for m in (2, 2.5, 2):  # 1 -> 2 -> 5 -> 10 -> 20 -> 50 ...
            step = int(step * m)
            if (hi - lo) / step <= most - 1:
                break
    first = math.ceil(lo / step) * step
    return list(range(first, hi + 1, step)) or [lo, hi]  # no round number inside: the ends


class PlotBase(PlotextPlot):
    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.x_range: tuple[float, float] | None = None
        self.y_max_count: int | None = None  # a histogram's tallest bar: whole-number y ticks
        self.labels = ("", "")  # (x, y) axis labels, dropped when the plot is short

    def legend(self, width: int | None = None) -> Text | None:
        return None

    def render(self):
        legend = self.legend()
        legend_rows = legend.plain.count("\n") + 1 if legend is not None else 0
        width, height = self.size.width, max(1, self.size.height - legend_rows)
        short = height < 12  # at 80x24 every row goes to the curves
        self.plt.xlabel("" if short else self.labels[0])
        self.plt.ylabel("" if short else self.labels[1])
        if self.x_range is not None:
            # keep the last label inside the canvas: plotext cuts what passes the right edge
            ticks = integer_ticks(*self.x_range, max(10, width - 14))
            self.plt.xticks(ticks, [str(t) for t in ticks])
            self.ticks = ticks
        if self.y_max_count is not None:
            yticks = integer_ticks(0, self.y_max_count, max(2, (height - 4) // 2) * TICK_SPACING)
            self.plt.yticks(yticks, [str(t) for t in yticks])
        self.plt.plotsize(width, height)
        self.plt._set_size(width, height)
        self.plt.theme(self._get_plotext_theme_name(self.app.theme))
        text = Text.from_ansi(self.plt.build())
        if legend is not None:
            text.rstrip()
            text.append("\n")
            text.append_text(legend)
        return text


class CurvePlot(PlotBase):
    """Named (steps, values) series on one plot; `set_series` replaces them and redraws."""

    def __init__(self, title: str, ylabel: str = "loss", *, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.title = title
        self.ylabel = ylabel
        self.empty_note = "no points yet"
        self.series: dict[str, tuple[list, list]] = {}

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()

    @property
    def point_count(self) -> int:
        return sum(len(xs) for xs, _ in self.series.values())

    def set_series(self, series: dict[str, tuple[list, list]]) -> None:
        new = {name: (list(xs), list(ys)) for name, (xs, ys) in series.items() if xs}
        if new != self.series:
            self.series = new
            self.replot()

    def set_empty_note(self, note: str) -> None:
        """What the empty plot says (e.g. the run's phase), instead of a stale "waiting"."""
        if note != self.empty_note:
            self.empty_note = note
            if not self.series:
                self.replot()

    def legend(self, width: int | None = None) -> Text | None:
        """The series' names in their colours, on as many lines as the width needs (a narrow
        plot comparing two runs must still name every curve)."""
        if not self.series:
            return None
        width = self.size.width if width is None else width
        text, used = Text(), 0
        for i, name in enumerate(self.series):
            gap = "  " if used else ""
            if used and used + len(gap) + 2 + len(name) > width:
                text.append("\n")
                gap, used = "", 0
            text.append(f"{gap}━ ", style=COLORS[i % len(COLORS)][1])
            text.append(name)
            used += len(gap) + 2 + len(name)
        return text

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.title if self.series else f"{self.title}: {self.empty_note}")
        self.labels = ("step", self.ylabel)
        xs_all = [x for xs, _ in self.series.values() for x in xs]
        ys_all = [y for _, ys in self.series.values() for y in ys]
        for i, (_name, (xs, ys)) in enumerate(self.series.items()):
            color = COLORS[i % len(COLORS)][0]
            if len(xs) == 1:  # one braille dot is invisible: a full-cell marker
                plt.scatter(xs, ys, marker="●", color=color)
            else:
                plt.plot(xs, ys, marker="braille", color=color)
        if not self.series:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            self.x_range = None
            plt.xticks([0, 1], ["", ""])
        else:
            lo, hi = min(xs_all), max(xs_all)
            if hi == lo:  # one step: room around it, but no negative steps
                lo, hi = max(0, lo - 1), hi + 1
            plt.xlim(lo, hi)
            ylo, yhi = min(ys_all), max(ys_all)
            pad = (yhi - ylo) * 0.05 or abs(yhi) * 0.05 or 0.5
            plt.ylim(ylo - pad, yhi + pad)
            self.x_range = (lo, hi)
        self.refresh()


class HistogramPlot(PlotBase):
    """Token lengths per row; the x range is the data's, with the max sequence length drawn as
    a red line when it falls inside it (and named in the title when it does not)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.lengths: list[int] = []
        self.limit: int | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()

    def set_lengths(self, lengths: list[int], limit: int | None) -> None:
        self.lengths, self.limit = list(lengths), limit
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        self.labels = ("tokens per row", "rows")
        if not self.lengths:
            plt.title("token lengths: choose a model (tokenizer)")
            self.x_range = self.y_max_count = None
            self.refresh()
            return
        lo, hi = min(self.lengths), max(self.lengths)
        title = "token length per row"
        if self.limit and self.limit <= hi:
            hi = max(hi, self.limit)
            title += f" (red: max length {self.limit})"
        elif self.limit:
            title += f" (max length {self.limit}: none over)"
        if hi == lo:
            lo, hi = lo - 1, hi + 1
        plt.title(title)
        bins = min(30, max(5, len(set(self.lengths))))
        plt.hist(self.lengths, bins=bins, color=COLORS[0][0])
        width = (max(self.lengths) - min(self.lengths)) / bins or 1
        counts = [0] * bins
        for n in self.lengths:
            counts[min(bins - 1, int((n - min(self.lengths)) / width))] += 1
        self.y_max_count = max(counts)
        if self.limit and self.limit <= hi:
            plt.vline(self.limit, "red")
        plt.xlim(lo, hi)
        self.x_range = (lo, hi)
        self.refresh()
