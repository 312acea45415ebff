"""The report's line plots: one line per row of ours (or of the paper's text) over its length columns."""

from __future__ import annotations

from titans.eval.report.columns import length_order


def _shorten(label: str, width: int) -> str:
    """``label`` cut at a word boundary to at most ``width`` characters (an ellipsis marks the cut)."""
    if len(label) <= width:
        return label
    return label[: width - 1].rsplit(" ", 1)[0].rstrip(",;") + "…"


def plot_lines(ax, series: dict[str, dict], xlabel: str, ylabel: str) -> None:
    """One line per series over its columns (lengths such as "2K", "512"), x in tokens on a log-2 axis; the
    legend beside the axes. Markers shrink and line styles change from series to series, so that series lying on
    each other stay visible."""
    from titans.eval.plots import LINESTYLES, MARKERS, legend_outside

    for k, (label, values) in enumerate(series.items()):
        points = sorted(((length_order(f"x {c}")[1], v) for c, v in values.items()
                         if isinstance(v, (int, float)) and v is not None), key=lambda p: p[0])
        points = [(max(x, 1), v) for x, v in points]
        if points:
            ax.plot(*zip(*points), marker=MARKERS[k % len(MARKERS)], markersize=max(3.0, 8.0 - 0.6 * k),
                    linestyle=LINESTYLES[k % len(LINESTYLES)], label=_shorten(label, 80))
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"{xlabel} (tokens)")
    ax.set_ylabel(ylabel)
    legend_outside(ax, fontsize=7)
