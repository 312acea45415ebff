"""scripts/demo_long_context.py end to end with a tiny budget (one step per model, short contexts)."""

from __future__ import annotations

import json

import pytest



@pytest.mark.slow
def test_demo_trains_and_evaluates_mac_and_swa(tmp_path, capsys):
    from scripts import demo_long_context as demo

    results = demo.main(["--minutes", "5", "--steps", "1", "--train-length", "256", "--eval-lengths", "256", "320",
                         "--eval-samples", "1", "--window", "64", "--batch-size", "1", "--warmup-batch-size", "1", "--n-layers", "2",
                         "--output-dir", str(tmp_path)])
    assert set(results) == {"mac", "swa"}
    assert results["mac"]["params"] == pytest.approx(results["swa"]["params"], rel=0.01)  # the same size
    assert all(r["steps"] == 1 and len(r["samples"]) == 2 for r in results.values())
    out = capsys.readouterr().out
    assert "| mac |" in out and "| swa |" in out and "| model | params | train steps |" in out
    [written] = tmp_path.glob("demo_long_context_*.json")
    assert json.loads(written.read_text())["args"]["window"] == 64
