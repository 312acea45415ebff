"""scripts/reproduce_table.py and titans.eval.report: every table and figure rendered from fixture result files, our
rows under the paper's row of the same model and marked with scale, date and commit, "-" where we have no run; the
Table 5 aggregates against hand-computed values and against the paper's own Tables 1-2; which model a record is."""

from __future__ import annotations

import json
import math

import pytest

from titans.eval import paper_results as paper
from titans.eval.report.build import ENTRIES
from titans.eval.report.cells import niah_cells
from titans.eval.report.identity import identify
from titans.eval.report.inputs import read_inputs
from titans.eval.report.table5 import table5_aggregates, table5_long_context, table5_lm_ppl, table5_reasoning
from titans.eval.results import build_record, write_record
from titans.eval.table1 import ACCURACY_COLUMNS, ALL_COLUMNS, table1_average
from titans.models import build_config
from scripts import reproduce_table as reproduce


def _config(variant, size="tiny", **overrides):
    """A model config as a record holds it; the tiny ones trained on 256-token windows, as the CPU runs."""
    overrides.setdefault("max_position_embeddings", 256 if size == "tiny" else 4096)
    return build_config(variant, size, vocab_size=4096, match_params=False, **overrides).to_dict()


# --------------------------------------------------------------------------------------------------- aggregation
def test_table5_aggregates_by_hand():
    row = {"Wiki ppl": 20.0, "LMB ppl": 31.0, **{c: float(i) for i, c in enumerate(ACCURACY_COLUMNS, start=40)}}
    assert table5_lm_ppl(row) == 25.5
    assert table5_reasoning(row) == pytest.approx(sum(range(40, 48)) / 8)  # 43.5
    cells = {"PK 2K": 100.0, "PK 4K": 50.0, "N 2K": 25.0, "W 16K": 0.0}
    assert table5_long_context(cells) == 43.75
    assert table5_aggregates(row, cells) == pytest.approx({"LM ppl": 25.5, "Reasoning acc": 43.5,
                                                           "Long context acc": 43.75})
    assert table5_aggregates(None, None) == {"LM ppl": None, "Reasoning acc": None, "Long context acc": None}
    assert table5_lm_ppl({"Wiki ppl": 20.0, "LMB ppl": math.nan}) is None
    assert niah_cells({"exact_match": {"niah_single_1/2048": 1.0, "niah_single_3/256": 0.5, "other/2048": 1.0}}) == {
        "PK 2K": 100.0, "W 256": 50.0}


@pytest.mark.parametrize("table5, table1", paper.TABLE5_FROM_TABLE1.items())
def test_the_paper_table5_rows_are_these_aggregates_of_its_tables_1_and_2(table5, table1):
    """The aggregation rule reproduces the paper's own Table 5 rows from its 400M Table 1 rows and Table 2."""
    lm_ppl, reasoning, long_context = paper.TABLE5[table5]
    row = paper.table1_paper_row("400m", table1)
    assert table5_lm_ppl(row) == pytest.approx(lm_ppl, abs=0.006)
    assert row["Avg"] == reasoning  # the printed Avg (for the LMM a typo of the paper: the mean is 47.87)
    assert abs(table1_average(row) - reasoning) < 0.05
    niah = paper.table2_paper_row(table1.replace("∗", ""))
    assert table5_long_context(niah) == pytest.approx(long_context, abs=0.006)


# -------------------------------------------------------------------------------------------------------- identity
def test_identify_names_the_model_and_its_ablation():
    lmm = identify({"config": _config("lmm")})
    assert (lmm.name, lmm.table5_row, lmm.figure7_row, lmm.plain) == ("Titans (LMM)", "LMM", "LMM (L_M=2)", True)
    cases = {"Linear Memory": dict(memory=dict(depth=1)), "w/o Convolution": dict(memory=dict(use_conv=False)),
             "w/o Momentum": dict(memory=dict(momentum=False)), "w/o Weight Decay": dict(memory=dict(forget=False)),
             "w/o Persistent Memory": dict(n_persistent=0)}
    for row, overrides in cases.items():
        identity = identify({"config": _config("lmm", **overrides)})
        assert identity.table5_row == row and not identity.plain, row
    deep = identify({"config": _config("lmm", memory=dict(depth=3))})
    assert deep.table5_row is None and deep.figure7_row == "LMM (L_M=3)"
    both = identify({"config": _config("lmm", memory=dict(depth=1, momentum=False))})
    assert both.table5_row is None and both.figure7_row is None
    assert identify({"config": _config("mac")}).table5_row == "+Attn (MAC)"
    assert identify({"config": _config("mac", n_persistent=0)}).table5_row is None
    assert identify({"config": _config("gated_deltanet")}).plain  # its own preset is no ablation
    assert identify({"config": _config("transformer")}).name == "Transformer++"
    assert identify({"class": "LlamaForCausalLM", "config": {"model_type": "llama"}}).name == "LlamaForCausalLM"


# --------------------------------------------------------------------------------------------------- the fixtures
class _Model:
    def __init__(self, config):
        self.config = type("Config", (), {"to_dict": staticmethod(lambda: config)})
        self._n = 7_300_000

    def parameters(self):
        import torch

        return [torch.zeros(self._n)]


def _write(directory, name, suite, config, results, suite_config=None, date="2026-12-02", commit="0123456789ab",
           train_tokens=None):
    record = build_record(suite, directory / f"{name}.ckpt", {"suite": suite_config or {"name": suite}},
                          _Model(config), results)
    record["created_utc"], record["git_commit"] = f"{date}T10:00:00+00:00", commit
    record["checkpoint"]["path"] = str(directory / f"{name}.ckpt")  # one checkpoint per model, its suites merged
    if train_tokens:
        record["checkpoint"]["train_tokens"] = train_tokens
    return write_record(record, directory, f"{suite}_{name}")


TABLE1_MAC = {c: float(v) for c, v in zip(ALL_COLUMNS, [30.0, 40.0, 30, 60, 35, 50, 45, 25, 36, 58])}
TABLE1_MAC["Avg"] = table1_average(TABLE1_MAC)


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    # a 400M MAC with Table 1 and S-NIAH results
    mac400 = _config("mac", "400m")
    _write(d, "mac400", "table1", mac400, {"table1": TABLE1_MAC}, train_tokens=15e9)
    _write(d, "mac400", "niah", mac400, {"exact_match": {"niah_single_1/2048": 1.0, "niah_single_1/4096": 0.5,
                                                         "niah_single_2/2048": 0.25, "niah_single_3/32768": 0.0}})
    # tiny CPU-scale runs: LMM, its linear-memory ablation and a depth-3 memory (two seeds of the LMM)
    for seed, ppl in ((0, 100.0), (1, 110.0)):
        _write(d, f"lmm_s{seed}", "perplexity", _config("lmm"),
               {"by_length": {"64": ppl + 20, "256": ppl, "1024": ppl + 5}, "by_position": {}, "lengths":
                [64, 256, 1024], "n_tokens": 1024}, train_tokens=614400)
    _write(d, "lmm_s0", "niah", _config("lmm"), {"exact_match": {"niah_single_1/256": 1.0, "niah_single_2/256": 0.0}},
           train_tokens=614400)
    _write(d, "linear", "perplexity", _config("lmm", memory=dict(depth=1)),
           {"by_length": {"64": 150.0, "256": 130.0}, "by_position": {}, "lengths": [64, 256], "n_tokens": 512})
    _write(d, "deep", "perplexity", _config("lmm", memory=dict(depth=3)),
           {"by_length": {"64": 140.0, "256": 120.0}, "by_position": {}, "lengths": [64, 256], "n_tokens": 512})
    # BABILong: few-shot (offline stories) and fine-tuned format
    _write(d, "mac_tiny", "babilong_fewshot_offline", _config("mac"),
           {"acc": {"qa1/0": 0.5, "qa2/0": 0.0, "qa1/1024": 0.25, "qa2/1024": 0.25}, "prompt": "few_shot"},
           suite_config={"name": "babilong_fewshot_offline", "source": "offline"})
    _write(d, "mac_tiny", "babilong_offline", _config("mac"), {"acc": {"qa1/0": 1.0, "qa1/2048": 0.5}},
           suite_config={"name": "babilong_offline", "source": "offline"})
    # a throughput file of scripts/bench_throughput.py, and a file that is no result at all
    rows = [dict(sweep="length", model="lmm", depth=None, batch=1, length=n, tokens=n, tok_s=1000.0 + n)
            for n in (256, 512)]
    rows += [dict(sweep="batch_x_length", model="transformer", depth=None, batch=2, length=256, tokens=512,
                  tok_s=5000.0), dict(sweep="depth", model="lmm", depth=3, batch=1, length=256, tokens=256,
                                      tok_s=321.0)]
    (d / "throughput").mkdir()
    (d / "throughput" / "t.json").write_text(json.dumps({
        "kind": "throughput", "created_utc": "2026-12-03T00:00:00+00:00", "git_commit": "fedcba987654",
        "device": "CPU (x86_64, 2 cores)", "settings": {"size": "tiny", "dtype": "float32", "threads": 1,
                                                        "sweeps": ["length", "batch_x_length", "depth"]},
        "results": rows}))
    (d / "notes.json").write_text(json.dumps(["not a record"]))
    return d


def _lines(text):
    return text.splitlines()


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _section(text, title):
    lines = _lines(text)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"### {title}"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


# ---------------------------------------------------------------------------------------------------- rendering
def test_every_table_and_figure_renders_with_our_rows_beside_the_papers(results, tmp_path, capsys):
    out = tmp_path / "report"
    reproduce.main(["--results", str(results), "--out", str(out)])
    text = capsys.readouterr().out
    for title in ("Table 1", "Table 2", "Table 5", "Figure 6", "Figure 7", "Figure 8", "Figure 9"):
        assert f"## {title}" in text, title
    assert (out / "report.md").read_text() in text
    assert {p.name for p in out.glob("*.png")} >= {"figure6_babilong.png", "figure7_perplexity.png",
                                                   "figure9_throughput_cpu_0.png"}
    assert all(p.stat().st_size > 1000 for p in out.glob("*.png"))

    # Table 1, 400M block: our MAC right below the paper's MAC, marked; "-" rows for models we did not run
    block = _section(text, "Table 1 - 400m")
    header = _cells(block[2])
    i = next(n for n, line in enumerate(block) if line.startswith("| Titans (MAC)∗ |"))
    ours = block[i + 1]
    assert ours.startswith("| ↳ ours: Titans (MAC) [400m, 7.3M params, 15.0B tokens; 2026-12-02; commit 0123456] |")
    cells = _cells(ours)
    assert cells[header.index("Wiki ppl")] == "30.00" and cells[header.index("Avg")] == f"{TABLE1_MAC['Avg']:.2f}"
    assert block[block.index("| Titans (MAG)∗ | 23.59 | 27.81 | 37.24 | 66.80 | 40.92 | 53.21 | 60.01 | 29.45 | "
                             "39.91 | 61.28 | 48.60 |") + 1].startswith("| ↳ ours: Titans (MAG) [no run] | - | - |")
    # the tiny LMM (no paper block at its size) sits in the first block, with its corpus ppl and "-" elsewhere
    first = _section(text, "Table 1 - 340m")
    tiny = [line for line in first if line.startswith("| ↳ ours: Titans (LMM) [tiny")]
    assert len(tiny) == 1 and "mean of 2 runs" in tiny[0]
    cells, header = _cells(tiny[0]), _cells(first[2])
    assert cells[header.index("corpus ppl")] == "105.00" and cells[header.index("Wiki ppl")] == "-"

    # Table 2: paper's columns first, our extra lengths beside them, "-" for missing cells
    block = _section(text, "Table 2")
    header = _cells(block[2])
    assert header[1:5] == ["PK 256", "PK 2K", "PK 4K", "PK 8K"] and "W 32K" in header
    mac = _cells(next(line for line in block if line.startswith("| ↳ ours: Titans (MAC) [400m")))
    assert mac[header.index("PK 2K")] == "100.00" and mac[header.index("PK 4K")] == "50.00"
    assert mac[header.index("N 2K")] == "25.00" and mac[header.index("PK 16K")] == "-"

    # Table 5: the aggregates of our MAC (hand-computed) beside "+Attn (MAC)", our CPU-scale LMM rows beside theirs
    block = _section(text, "Table 5")
    header = _cells(block[2])
    i = block.index("| +Attn (MAC) | 26.67 | 48.65 | 97.95 | - |")
    mac = _cells(block[i + 1])
    assert mac[0].startswith("↳ ours: +Attn (MAC) [400m")
    assert mac[header.index("LM ppl")] == "35.00"  # (30 + 40) / 2
    assert mac[header.index("Reasoning acc")] == f"{TABLE1_MAC['Avg']:.2f}"
    assert mac[header.index("Long context acc")] == f"{(100 + 50 + 25 + 0) / 4:.2f}"
    lmm = _cells(block[block.index("| LMM | 27.01 | 47.83 | 92.68 | - |") + 1])
    assert lmm[0].startswith("↳ ours: LMM [tiny") and lmm[header.index("corpus ppl")] == "105.00"
    assert lmm[header.index("Long context acc")] == "50.00" and lmm[header.index("LM ppl")] == "-"
    linear = block[block.index("| Linear Memory | 28.49 | 46.97 | 85.34 | - |") + 1]
    assert _cells(linear)[header.index("corpus ppl")] == "130.00"
    assert block[block.index("| w/o Momentum | 28.98 | 45.49 | 87.12 | - |") + 1].startswith(
        "| ↳ ours: w/o Momentum [no run] |")

    # Figure 6: few-shot and fine-tuned rows in their own blocks; the paper's text numbers in the fine-tuned one
    few = _section(text, "Figure 6a")
    mac = [line for line in few if line.startswith("| ↳ ours: Titans (MAC) [tiny")]
    assert len(mac) == 1 and "offline stories, mean of qa1-qa2" in mac[0]
    header = _cells(few[2])
    assert _cells(mac[0])[header.index("0K")] == "25.0" and _cells(mac[0])[header.index("1K")] == "25.0"
    tuned = _section(text, "Figure 6b")
    header = _cells(tuned[2])
    assert header[1:4] == ["0K", "1K", "2K"] and header[-1] == "10M"  # our lengths and the paper's
    armt = _cells(next(line for line in tuned if line.startswith("| ARMT [NeurIPS App. G.1] |")))
    assert armt[header.index("0K")] == "-" and armt[header.index("2K")] == "98.0" and armt[-1] == "77.0"
    mac = _cells(next(line for line in tuned if line.startswith("| ↳ ours: Titans (MAC) [tiny")))
    assert mac[header.index("0K")] == "100.0" and mac[header.index("2K")] == "50.0" and mac[-1] == "-"

    # Figure 7: the LMM by memory depth (L_M = 1, 2, 3) in the first panel, beside the paper's plot-only rows
    block = _section(text, "Figure 7 (170M)")
    for depth, ppl in ((1, "130.00"), (2, "105.00"), (3, "120.00")):
        i = next(n for n, line in enumerate(block) if line.startswith(f"| LMM (L_M={depth}) | plot only |"))
        assert block[i + 1].startswith(f"| ↳ ours: LMM (L_M={depth}) [tiny") and f"| {ppl} |" in block[i + 1]
    assert any(line.startswith("| ↳ ours: LMM (L_M=4) [no run]") for line in block)

    # Figures 8 and 9: throughput rows marked with the device, date and commit of the benchmark
    block = _section(text, "Figure 9 - training tokens/s by sequence length")
    lmm = next(line for line in block if line.startswith("| ↳ ours: Titans (LMM)"))
    assert "CPU (x86_64, 2 cores), tiny, float32, 1 thread(s); 2026-12-03; commit fedcba9" in lmm
    assert _cells(lmm)[1:] == ["1256", "1512"]
    assert any(line.startswith("| ↳ ours: Transformer++") and "| 5000 |" in line
               for line in _section(text, "Figure 9 - training tokens/s, sequence length x batch"))
    assert any(line.startswith("| ↳ ours: LMM (L_M=3)") and "| 321 |" in line for line in _section(text, "Figure 8"))


def test_tables_option_takes_every_entry_and_nothing_else(results, capsys):
    keys = list(ENTRIES)  # in the paper's order (tables 3 and 4 come from the forecasting and genomics entries)
    assert [k for k in keys if k in ("1", "2", "5", "fig6", "fig7", "fig8", "fig9")] == [
        "1", "2", "5", "fig6", "fig7", "fig8", "fig9"]
    for key in ENTRIES:
        reproduce.main(["--results", str(results), "--tables", key, "--no-write"])
        assert capsys.readouterr().out.startswith(f"## {ENTRIES[key].title}")
    with pytest.raises(SystemExit):
        reproduce.main(["--tables", "6", "--no-write"])


def test_without_results_every_row_of_ours_is_a_dash(tmp_path, capsys):
    reproduce.main(["--results", str(tmp_path), "--tables", "5", "--no-write"])
    text = capsys.readouterr().out
    ours = [line for line in _lines(text) if line.startswith("| ↳ ours")]
    assert len(ours) == len(paper.TABLE5)
    assert all(line.endswith("[no run] | - | - | - |") for line in ours)


def test_records_of_one_checkpoint_are_one_run(results):
    inputs = read_inputs([results])
    runs = {r.checkpoint.rsplit("/", 1)[-1]: r for r in inputs.runs}
    assert set(runs["mac400.ckpt"].records) == {"table1", "niah"}
    assert runs["mac400.ckpt"].scale == "400m, 7.3M params, 15.0B tokens"
    assert any(d.get("kind") == "throughput" for d in inputs.documents)


def test_a_result_file_records_how_far_its_checkpoint_trained(tmp_path):
    import torch

    from titans.eval.results import describe_checkpoint

    path = tmp_path / "last.ckpt"
    torch.save({"global_step": 7, "hyper_parameters": {"tokens_per_step": 2048, "model_config": {}},
                "state_dict": {}}, path)
    assert describe_checkpoint(path) == {"path": str(path.resolve()), "kind": "lightning", "global_step": 7,
                                         "train_tokens": 14336}
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    assert describe_checkpoint(tmp_path / "broken.ckpt")["kind"] == "lightning"  # written whatever the file holds


def test_blocks_take_any_cells_our_rows_averaged():
    from titans.eval.report.blocks import Block, place, render_block
    from titans.eval.report.rows import OurRow, average_rows

    rows = average_rows([OurRow("Model A", {"x": (0.25, 0.5), "y": 2.0}, "tiny"),
                         OurRow("Model A", {"x": (0.75, 1.0), "y": 4.0}, "tiny"),
                         OurRow("Model C", {"x": (0.1, 0.2)}, "tiny")])
    block = Block("T", ["x", "y"], {"Model A": {"x": (0.1, 0.2), "y": 1.0}, "Model B∗ [v1]": {"x": None, "y": 3.0}},
                  reproducible={"Model B"}, decimals=3)
    place([block], rows)
    lines = render_block(block).splitlines()
    assert lines[4] == "| Model A | 0.100 / 0.200 | 1.000 |"
    assert lines[5] == "| ↳ ours: Model A [tiny; ?; commit ?; mean of 2 runs] | 0.500 / 0.750 | 3.000 |"
    assert lines[6:8] == ["| Model B∗ [v1] | - | 3.000 |", "| ↳ ours: Model B [no run] | - | - |"]
    assert lines[8] == "| ↳ ours: Model C [tiny; ?; commit ?] | 0.100 / 0.200 | - |"  # no paper row: at the end


BLOCKS = {"1": 4, "2": 1, "5": 1, "fig6": 2, "fig7": 3, "fig8": 1, "fig9": 2}  # Table 1: one per size, ...


@pytest.mark.parametrize("key", list(ENTRIES))
def test_every_block_is_a_well_formed_table_without_results(key, tmp_path, capsys):
    reproduce.main(["--results", str(tmp_path), "--tables", key, "--no-write"])
    lines = _lines(capsys.readouterr().out)
    starts = [i for i, line in enumerate(lines) if line.startswith("| Model |")]
    assert len(starts) == BLOCKS.get(key, len(starts)) and starts
    for start in starts:
        table = []
        for line in lines[start:]:
            if not line.startswith("|"):
                break
            table.append(line)
        width = table[0].count("|")
        assert width > 2 and table[1] == "|" + "---|" * (width - 1), table[0]
        assert all(row.count("|") == width for row in table), table[0]
