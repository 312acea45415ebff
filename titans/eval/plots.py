"""Figures: S-NIAH depth x length heatmaps, BABILong accuracy per length, perplexity, throughput.

House style, for figures that go into a paper as they are: every heatmap cell carries its value, legends sit
outside the data (beside the axes, or below the figure), layouts are matplotlib's constrained layout and files
are saved with a tight bounding box, so nothing is cut off."""

from __future__ import annotations

from pathlib import Path

from titans.eval.long_context import length_label, mean_by


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")


def legend_outside(ax, **kwargs):
    """The legend of ``ax`` beside it on the right, off the data (nothing when the axes have no labelled lines)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    options = dict(loc="center left", bbox_to_anchor=(1.02, 0.5), borderaxespad=0.0, frameon=False, fontsize=8)
    options.update(kwargs)
    return ax.legend(handles, labels, **options)


def annotate_cells(ax, grid: list[list[float]], fmt: str = "{:.0f}", vmin: float = 0.0, vmax: float = 100.0,
                   fontsize: float = 8) -> None:
    """Write each heatmap cell's value in it (white on the dark ends of the colour map, black between; "-" for a
    cell without data)."""
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if value != value:  # NaN: no sample in this cell
                ax.text(j, i, "-", ha="center", va="center", fontsize=fontsize, color="grey")
                continue
            share = (value - vmin) / (vmax - vmin) if vmax > vmin else 0.5
            color = "white" if share < 0.2 or share > 0.8 else "black"
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=fontsize, color=color)


def niah_heatmap(rows: list[dict], path: str | Path, metric: str = "exact_match", title: str | None = None) -> Path:
    """One heatmap per S-NIAH task: needle depth (rows) x context length (columns), accuracy in %, each cell
    annotated with its value."""
    plt = _pyplot()
    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 4), squeeze=False, layout="constrained")
    for ax, task in zip(axes[0], tasks):
        cells = mean_by([r for r in rows if r["task"] == task], ("depth", "context_length"), metric)
        depths = sorted({d for d, _ in cells})
        lengths = sorted({n for _, n in cells})
        grid = [[100 * cells.get((d, n), float("nan")) for n in lengths] for d in depths]
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="RdYlGn", aspect="auto")
        annotate_cells(ax, grid, fontsize=10 if len(depths) <= 6 and len(lengths) <= 6 else 7)
        ax.set_xticks(range(len(lengths)), [length_label(n) for n in lengths])
        ax.set_yticks(range(len(depths)), [f"{100 * d:.0f}%" for d in depths])
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("needle depth")
        ax.set_title(task)
        fig.colorbar(image, ax=ax, label=f"{metric} (%)")
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def _save(plt, fig, path: str | Path) -> Path:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def babilong_plot(rows: list[dict], path: str | Path, title: str | None = None) -> Path:
    """Accuracy (%) against context length, one line per bAbI task, plus the mean over the tasks."""
    plt = _pyplot()
    cells = mean_by(rows, ("task", "context_length"), "acc")
    lengths = sorted({n for _, n in cells})
    tasks = sorted({t for t, _ in cells})
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    for k, task in enumerate(tasks):  # markers shrink and styles change, so that lines lying on each other show
        xs = [i for i, n in enumerate(lengths) if (task, n) in cells]
        ax.plot(xs, [100 * cells[(task, lengths[i])] for i in xs], marker=MARKERS[k % len(MARKERS)],
                markersize=max(3.0, 9.0 - 1.5 * k), linestyle=LINESTYLES[k % len(LINESTYLES)], label=task)
    if len(tasks) > 1:
        means = mean_by(rows, ("context_length",), "acc")
        ax.plot(range(len(lengths)), [100 * means[(n,)] for n in lengths], color="black", linewidth=2,
                label="mean", zorder=0)
    ax.set_xticks(range(len(lengths)), [length_label(n) for n in lengths])
    ax.set_ylim(-2, 102)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("accuracy (%)")
    legend_outside(ax)
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)


def perplexity_plot(results: dict, path: str | Path, title: str | None = None) -> Path:
    """Perplexity against the window length (left) and against the position in the longest windows (right)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    lengths = results["lengths"]
    left.plot(lengths, [results["by_length"][str(n)] for n in lengths], marker="o")
    left.set_xscale("log", base=2)
    left.set_xticks(lengths, [length_label(n) for n in lengths])
    left.set_xlabel("sequence length (tokens)")
    left.set_ylabel("perplexity")
    ranges = [tuple(int(x) for x in key.split("-")) for key in results["by_position"]]
    right.plot([(a + b) / 2 for a, b in ranges], list(results["by_position"].values()), marker="o")
    right.set_xlabel(f"position in {length_label(lengths[-1])}-token windows")
    right.set_ylabel("perplexity")
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def throughput_plot(record: dict, path: str | Path, title: str | None = None) -> Path:
    """Training tokens/s: against the sequence length, as batch x length at a fixed token count (the paper's
    Figure 9) and against the length for each memory depth (Figure 8); one panel per sweep in ``record``."""
    from titans.models.variants import display_name

    plt = _pyplot()
    sweeps = [s for s in ("length", "batch_x_length", "depth") if any(r["sweep"] == s for r in record["results"])]
    fig, axes = plt.subplots(1, max(1, len(sweeps)), figsize=(5.5 * max(1, len(sweeps)), 4.6), squeeze=False,
                             layout="constrained")
    models = {}  # the models' lines, one legend below the figure for the length panels
    for ax, sweep in zip(axes[0], sweeps):
        rows = [r for r in record["results"] if r["sweep"] == sweep and "tok_s" in r]
        for key in dict.fromkeys((r["model"], r.get("depth")) for r in rows):
            line = sorted((r for r in rows if (r["model"], r.get("depth")) == key), key=lambda r: r["length"])
            label = f"depth {key[1]}" if sweep == "depth" else display_name(key[0])
            ax.plot([r["length"] for r in line], [r["tok_s"] for r in line], marker="o", label=label)
        lengths = sorted({r["length"] for r in rows})
        ax.set_xscale("log", base=2)
        if sweep == "batch_x_length":
            batch = {r["length"]: r["batch"] for r in rows}
            ax.set_xticks(lengths, [f"{length_label(n)}\nx{batch[n]}" for n in lengths])
            ax.set_xlabel(f"sequence length x batch ({rows[0]['tokens'] if rows else '?'} tokens per step)")
        else:
            ax.set_xticks(lengths, [length_label(n) for n in lengths])
            ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel("training tokens/s")
        ax.set_title({"length": "Figure 9: tokens/s vs length", "batch_x_length": "Figure 9: batch x length",
                      "depth": "Figure 8: Titans (LMM) by memory depth"}[sweep])
        if sweep == "depth":
            legend_outside(ax)
        else:
            models.update(zip(*reversed(ax.get_legend_handles_labels())))
    if models:
        fig.legend(list(models.values()), list(models), loc="outside lower center", ncol=min(5, len(models)),
                   frameon=False, fontsize=8)
    fig.suptitle(title or f"{record.get('device', '')}, size {record.get('settings', {}).get('size', '?')}")
    return _save(plt, fig, path)
