"""scripts/reproduce_small.py (the CPU-scale report): its runs are ablate_small's corpus runs where they overlap
(same rows, same token budget) and are reused from its result JSON; every other row composes into the intended
model; every evaluation it runs composes offline. (The whole pipeline is run by hand: docs/experiments.md gives the
command and its cost.)"""

from __future__ import annotations

import json

import hydra
import pytest
import torch

from scripts import reproduce_small as small
from train_helpers import ROOT
from train_helpers import compose_train_config as _compose


def test_lmm_rows_are_ablate_smalls_corpus_runs(tmp_path):
    args = small.parse_args(["--rows", *small.LMM_ROWS, "--seeds", "0", "1", "--log-dir", str(tmp_path)])
    jobs = small.training_jobs(args)
    planned = small.ablate.plan(small.ablate.parse_args(["--tasks", "lm", "--seeds", "0", "1"]))
    assert [(j["row"], j["seed"]) for j in jobs] == [(j["row"], j["seed"]) for j in planned]
    for job, theirs in zip(jobs, planned):
        # the same command, plus the checkpoint interval (which is the default 100 at the default 300 steps)
        assert job["overrides"] == theirs["overrides"] + ["callbacks.model_checkpoint.every_n_train_steps=100"]
        assert job["output_dir"] == str(tmp_path / f"{job['row']}_s{job['seed']}")


def test_the_longest_runs_start_first_and_the_rest_keep_their_order(tmp_path):
    jobs = small.training_jobs(small.parse_args(["--log-dir", str(tmp_path)]))
    rows = [j["row"] for j in jobs]
    assert sorted(rows) == sorted(small.DEFAULT_ROWS)
    assert rows[:4] == ["depth4", "depth3", "mac", "mag"] and rows[-1] == "transformer"
    assert [r for r in rows if r in small.LMM_ROWS] == small.LMM_ROWS


@pytest.mark.parametrize("row, variant, depth", [("mac", "mac", 2), ("transformer", "transformer", None),
                                                 ("depth3", "lmm", 3), ("depth4", "lmm", 4),
                                                 ("gated_deltanet", "gated_deltanet", 1)])
def test_other_rows_build_the_intended_tiny_model_with_the_same_budget(row, variant, depth, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    [job] = small.training_jobs(small.parse_args(["--rows", row, "--lm-steps", "7"]))
    cfg = _compose(tmp_path, job["overrides"])
    assert (cfg.trainer.max_steps, cfg.data.seq_len, cfg.data.batch_size) == (7, 256, 8)  # ablate_small's shape
    assert cfg.data._target_ == "titans.data.TextDataModule" and cfg.callbacks.model_checkpoint.every_n_train_steps == 7
    with torch.device("meta"):
        config = hydra.utils.instantiate(cfg.model.net, vocab_size=4096).config
    assert (config.variant, config.n_layers, config.d_model) == (variant, 4, 128)
    assert (config.memory.depth if config.memory else None) == depth


def test_ablate_smalls_checkpoints_are_reused_only_with_the_same_budget(tmp_path):
    ablations = tmp_path / "ablations"
    ablations.mkdir()
    runs = []
    for row, steps, ok in (("full", 300, True), ("no_conv", 300, False)):
        run = tmp_path / "logs" / row
        (run / "checkpoints").mkdir(parents=True)
        if ok:
            (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
        runs.append(dict(task="lm", row=row, seed=0, output_dir=str(run), **{"val/ppl": 100.0}))
    runs.append(dict(task="mqar", row="no_momentum", seed=0, output_dir=str(tmp_path), **{"val/acc": 0.5}))
    (ablations / "ablations_2026-12-01.json").write_text(json.dumps({"args": {"lm_steps": 300}, "results": runs}))
    args = small.parse_args(["--ablations-dir", str(ablations)])
    assert small.reusable_ablation_runs(args) == {("full", 0): str(tmp_path / "logs" / "full" / "checkpoints" /
                                                                    "last.ckpt")}
    assert small.reusable_ablation_runs(small.parse_args(["--ablations-dir", str(ablations), "--lm-steps", "50"])) == {}


@pytest.mark.parametrize("suite", sorted(small.SUITES))
def test_every_small_evaluation_composes(suite, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from titans.eval.suites import KINDS

    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("eval.yaml", overrides=["ckpt=x.ckpt", *small.SUITES[suite](0.1)])
    assert cfg.suite.name == suite and cfg.suite.kind in KINDS
    if cfg.suite.kind == "perplexity":
        assert all(cfg.suite.n_tokens % n == 0 for n in cfg.suite.lengths)
