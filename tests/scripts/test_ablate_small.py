"""scripts/ablate_small.py: every row composes into the LMM with exactly its one change; the summary's math."""

import pytest

from scripts import ablate_small as ablate
from train_helpers import ROOT
from train_helpers import compose_train_config as _compose

CHANGED = {"linear_memory": ("memory", "depth", 1), "no_momentum": ("memory", "momentum", False),
           "no_weight_decay": ("memory", "forget", False), "no_conv": ("memory", "use_conv", False),
           "no_persistent": (None, "n_persistent", 0)}


@pytest.mark.parametrize("task", ["mqar", "lm"])
def test_each_row_is_the_lmm_with_one_change(task, tmp_path, monkeypatch):
    import hydra
    import torch

    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    jobs = ablate.plan(ablate.parse_args(["--tasks", task, "--seeds", "0"]))
    assert [j["row"] for j in jobs] == list(ablate.ROWS)
    configs = {}
    for job in jobs:
        cfg = _compose(tmp_path, job["overrides"])
        with torch.device("meta"):  # the model's config as train.py builds it, no weights
            configs[job["row"]] = hydra.utils.instantiate(cfg.model.net, vocab_size=64).config.to_dict()
    full = configs["full"]
    assert full["memory"]["depth"] == 2 and full["memory"]["momentum"] and full["n_persistent"] == 16
    for row, (group, key, value) in CHANGED.items():
        got = configs[row]["memory"][key] if group else configs[row][key]
        assert got == value, row
        others = {k: v for k, v in configs[row]["memory"].items() if k != key}
        assert others == {k: v for k, v in full["memory"].items() if k != key}, row


def test_summary_mean_and_spread():
    results = [dict(task="mqar", row="full", **{"val/acc": a}) for a in (0.9, 1.0, 0.95)]
    results.append(dict(task="lm", row="no_conv", **{"val/ppl": 120.0}))
    table = ablate.summarise(results)
    mean, spread, n = table["mqar"]["full"]
    assert (round(mean, 6), round(spread, 6), n) == (0.95, 0.05, 3)
    assert table["lm"]["no_conv"] == (120.0, 0.0, 1)
    text = ablate.markdown(table, ablate.parse_args([]))
    assert "| full | 0.950 ± 0.050 (n=3) | - |" in text
