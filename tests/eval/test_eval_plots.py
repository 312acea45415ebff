"""The figures' house style (titans/eval/plots.py): heatmap cells carry their values, legends stay off the data;
scripts/replot.py redraws eval.py's figures from their result files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from titans.eval import plots
from train_helpers import ROOT


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plotting functions save (still drawable after they are closed)."""
    figures = []
    save = plots._save

    def keep(plt, fig, path):
        figures.append(fig)
        return save(plt, fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def _legends_clear_of_axes(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # a closed figure keeps no canvas of its own
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends, "no legend drawn"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            assert not box.overlaps(ax.get_window_extent(renderer)), (legend.get_texts()[0].get_text(), ax)


def _niah_rows(task="passkey"):
    # depth x length accuracy: 0, 50 (two samples), 100; one cell without samples
    values = {(0.0, 256): [0.0], (0.0, 512): [1.0, 0.0], (1.0, 256): [1.0]}
    return [{"task": task, "depth": d, "context_length": n, "exact_match": v}
            for (d, n), vs in values.items() for v in vs]


def test_niah_heatmap_cells_carry_their_values(drawn, tmp_path):
    plots.niah_heatmap(_niah_rows(), tmp_path / "niah.png")
    (fig,) = drawn
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["-", "0", "100", "50"]


def test_legends_sit_outside_the_data(drawn, tmp_path):
    rows = [{"task": t, "context_length": n, "acc": a} for t, a in (("qa1", 1.0), ("qa2", 0.0))
            for n in (0, 1000, 2000)]
    plots.babilong_plot(rows, tmp_path / "babilong.png")
    results = [dict(sweep=sweep, model=model, depth=depth, length=n, batch=2048 // n, tokens=2048, tok_s=n + i)
               for sweep, model, depth in (("length", "transformer", None), ("length", "lmm", None),
                                           ("batch_x_length", "transformer", None), ("depth", "lmm", 1),
                                           ("depth", "lmm", 2))
               for i, n in enumerate((256, 512, 1024))]
    plots.throughput_plot({"kind": "throughput", "device": "CPU", "settings": {"size": "tiny"}, "results": results},
                          tmp_path / "throughput.png")
    from titans.eval.report.figures import plot_lines

    plt = plots._pyplot()
    fig, ax = plt.subplots(layout="constrained")
    plot_lines(ax, {"LMM (L_M=1) (tiny, 1.9M params, 614.4K tokens)": {"512": 150.0, "1K": 140.0},
                    "Transformer++ (tiny, 1.9M params, 614.4K tokens)": {"512": 130.0, "1K": 160.0}},
               "sequence length", "perplexity")
    for figure in [*drawn, fig]:
        _legends_clear_of_axes(figure)
    plt.close(fig)


def test_replot_redraws_eval_figures_from_result_files(tmp_path):
    record = {"suite": "niah", "config": {"suite": {"kind": "niah"}},
              "figures": ["/elsewhere/run_niah_heatmap.png"], "results": {"samples": _niah_rows()}}
    (tmp_path / "run.json").write_text(json.dumps(record))
    (tmp_path / "other.json").write_text(json.dumps({"suite": "smoke", "config": {"suite": {"kind": "lm_eval"}}}))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "replot.py"), str(tmp_path / "run.json"),
                           str(tmp_path / "other.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"Figure written to {tmp_path / 'run_niah_heatmap.png'}"
    assert (tmp_path / "run_niah_heatmap.png").stat().st_size > 1000
