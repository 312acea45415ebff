"""Figures: S-NIAH depth x length heatmaps and BABILong accuracy per length."""

from __future__ import annotations

from pathlib import Path

from titans.eval.long_context import length_label, mean_by


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def niah_heatmap(rows: list[dict], path: str | Path, metric: str = "exact_match", title: str | None = None) -> Path:
    """One heatmap per S-NIAH task: needle depth (rows) x context length (columns), accuracy in %."""
    plt = _pyplot()
    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        cells = mean_by([r for r in rows if r["task"] == task], ("depth", "context_length"), metric)
        depths = sorted({d for d, _ in cells})
        lengths = sorted({n for _, n in cells})
        grid = [[100 * cells.get((d, n), float("nan")) for n in lengths] for d in depths]
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="RdYlGn", aspect="auto")
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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def babilong_plot(rows: list[dict], path: str | Path, title: str | None = None) -> Path:
    """Accuracy (%) against context length, one line per bAbI task, plus the task mean."""
    plt = _pyplot()
    cells = mean_by(rows, ("task", "context_length"), "acc")
    lengths = sorted({n for _, n in cells})
    fig, ax = plt.subplots(figsize=(6, 4))
    for task in sorted({t for t, _ in cells}):
        xs = [i for i, n in enumerate(lengths) if (task, n) in cells]
        ax.plot(xs, [100 * cells[(task, lengths[i])] for i in xs], marker="o", label=task)
    ax.set_xticks(range(len(lengths)), [length_label(n) for n in lengths])
    ax.set_ylim(-2, 102)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)


def perplexity_plot(results: dict, path: str | Path, title: str | None = None) -> Path:
    """Perplexity against the window length (left) and against the position in the longest windows (right)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
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
