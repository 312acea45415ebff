"""The embedded default run learns what the README says it learns.

`python train.py` (configs/train.yaml: the tiny MAC, 300 steps of 8 x 256 tokens of the bundled corpus), run as a
fresh clone runs it (CSV logger instead of offline wandb, which does not change the run; one thread, the memory's compiled chunk step unless TITANS_COMPILE=false), must end within 5%
of the validation perplexity recorded in experiments/results/default_run.json (written by
scripts/stability_runs.py; the README quotes it), pass through the recorded perplexity at each validation, and see
no gradient spike (pre-clip norm above 10x its running median).
"""

from __future__ import annotations

import csv
import json

import pytest

from train_helpers import ROOT, run_dirs, run_train

RECORD = ROOT / "experiments" / "results" / "default_run.json"


@pytest.mark.slow
def test_the_default_run_ends_at_the_recorded_perplexity(tmp_path):
    record = json.loads(RECORD.read_text())
    assert record["command"] == "python train.py"
    run_train(["logger=csv", "callbacks.progress_bar.refresh_rate=0"], tmp_path, timeout=1800)
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 300
    assert metrics["val/ppl"] == pytest.approx(record["val_ppl"], rel=0.05), (metrics["val/ppl"], record)
    assert metrics["train/grad_norm_max_ratio"] <= 10, metrics
    seen = {}
    for path in run.glob("csv/version_*/metrics.csv"):
        with path.open() as fh:
            seen.update({str(int(r["step"]) + 1): float(r["val/ppl"]) for r in csv.DictReader(fh) if r.get("val/ppl")})
    assert set(seen) == set(record["val_ppl_at_step"]), (seen, record)
    for step, ppl in record["val_ppl_at_step"].items():
        assert seen[step] == pytest.approx(ppl, rel=0.05), (step, seen, record)


def test_the_readme_quotes_the_recorded_number():
    record = json.loads(RECORD.read_text())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{record['val_ppl']:.1f}" in readme, f"the README does not quote {record['val_ppl']:.1f}"
    assert "experiments/results/default_run.json" in readme
