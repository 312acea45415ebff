"""scripts/bench_throughput.py (Figures 8-9): the sweeps' shapes, one real measurement in this process, and the
table and plot of a result file. (Throughput itself is a benchmark, not a test: see experiments/results.)"""

from __future__ import annotations

from scripts import bench_throughput as bench


def test_sweeps_and_jobs():
    args = bench.parse_args(["--lengths", "2048", "512", "1024", "--tokens", "4096", "--batch", "2"])
    assert bench.shapes(args, "length") == [(2, 512), (2, 1024), (2, 2048)]
    assert bench.shapes(args, "batch_x_length") == [(8, 512), (4, 1024), (2, 2048)]  # the same tokens per step
    jobs = bench.jobs(args)
    assert [j["model"] for j in jobs if j["sweep"] == "length"] == bench.MODELS
    assert [(j["model"], j["depth"]) for j in jobs if j["sweep"] == "depth"] == [("lmm", d) for d in (1, 2, 3, 4)]
    assert set(bench.MODELS) >= {"transformer", "swa", "deltanet", "gated_deltanet", "ttt", "lmm", "mac", "mag", "mal"}


def test_one_measurement_and_its_report(tmp_path, single_thread):
    args = bench.parse_args(["--lengths", "16", "32", "--tokens", "32", "--vocab", "64", "--repeats", "1",
                             "--segment-len", "16", "--window", "16"])
    rows = bench.measure(args, dict(sweep="batch_x_length", model="mac", depth=None))
    rows += bench.measure(args, dict(sweep="depth", model="lmm", depth=4))  # unmatched: builds at the tiny width
    assert [(r["batch"], r["length"]) for r in rows] == [(2, 16), (1, 32), (1, 16), (1, 32)]
    assert all(r["tok_s"] > 0 and r["tokens"] == r["batch"] * r["length"] for r in rows)
    record = {"kind": "throughput", "created_utc": "2026-12-01T00:00:00+00:00", "git_commit": "abcdef0",
              "device": "CPU", "settings": {"size": "tiny", "dtype": "float32", "threads": 1,
                                            "sweeps": ["batch_x_length", "depth"]}, "results": rows}
    text = bench.markdown(record)
    assert "| model | 2 x 16 | 1 x 32 |" in text and "| Titans (MAC) |" in text
    assert "| Titans (LMM) depth 4 |" in text
    from titans.eval.plots import throughput_plot

    assert throughput_plot(record, tmp_path / "t.png").stat().st_size > 1000
