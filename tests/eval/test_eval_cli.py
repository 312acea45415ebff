"""eval.py end to end: result files, checkpoint kinds, clear errors, offline behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eval_helpers import ROOT, evaluate, tiny_llama, tiny_tokenizer
from titans.errors import CheckpointError, HubUnavailableError
from titans.eval.loading import load_model_and_tokenizer
from titans.eval.results import REQUIRED_KEYS, read_record

OFFLINE_ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny Llama + tokenizer saved as a Hugging Face directory."""
    path = tmp_path_factory.mktemp("tiny_hf")
    tokenizer = tiny_tokenizer()
    tiny_llama(len(tokenizer), max_position_embeddings=512).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.slow
def test_eval_py_writes_a_complete_result_file(hf_dir, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "eval.py"), f"ckpt={hf_dir}", "suite=smoke",
                           f"output_dir={tmp_path}", f"paths.log_dir={tmp_path / 'logs'}"],
                          cwd=ROOT, env=OFFLINE_ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [path] = tmp_path.glob("smoke_*.json")
    record = read_record(path)
    assert all(record[key] is not None for key in ("suite", "checkpoint", "titans_version", "config", "model"))
    assert record["checkpoint"] == {"path": str(hf_dir.resolve()), "kind": "huggingface"}
    assert record["config"]["suite"]["name"] == "smoke" and record["config"]["ckpt"] == str(hf_dir)
    assert "git_commit" in record and record["model"]["class"] == "LlamaForCausalLM"
    results = record["results"]["lm_eval"]
    assert results["titans_local_loglikelihood"]["perplexity,none"] > 1
    assert 0 <= results["titans_local_multiple_choice"]["acc_norm,none"] <= 1
    assert results["titans_local_rolling"]["word_perplexity,none"] > 1
    assert results["titans_local_generate"]["exact_match,none"] == 0.0


def test_eval_missing_or_invalid_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint given"):
        evaluate(["suite=smoke"])
    with pytest.raises(CheckpointError, match="not found"):
        evaluate([f"ckpt={tmp_path / 'missing.ckpt'}", "suite=smoke"])
    with pytest.raises(CheckpointError, match="without config.json"):
        load_model_and_tokenizer(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        load_model_and_tokenizer(tmp_path / "notes.txt")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_model_and_tokenizer(tmp_path / "garbage.ckpt")


def test_hub_suites_fail_fast_offline(hf_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for suite in ("table1", "babilong"):
        with pytest.raises(HubUnavailableError, match="offline alternative"):
            evaluate([f"ckpt={hf_dir}", f"suite={suite}"])


def test_niah_and_babilong_suites_on_a_titans_lightning_checkpoint(tmp_path, capsys):
    from titans.data import build_tokenizer
    from titans.models import build_causal_lm
    from titans.training.lit_module import LitCausalLM

    tokenizer = build_tokenizer(kind="bytes")
    net = build_causal_lm("transformer", "tiny", vocab_size=len(tokenizer), n_layers=1, d_model=32, n_heads=2,
                          max_position_embeddings=2048)
    lit = LitCausalLM(net=net, optimizer=dict(lr=1e-3), scheduler=dict(warmup_steps=1),
                      tokenizer=tokenizer.titans_config)
    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": lit.state_dict(), "hyper_parameters": dict(lit.hparams)}, ckpt)

    path = evaluate([f"ckpt={ckpt}", "suite=niah", "suite.tasks=[passkey,niah_single_2]", "suite.lengths=[512]",
                      "suite.depths=[0.0,1.0]", "suite.samples_per_cell=1", f"output_dir={tmp_path}"])
    record = json.loads(path.read_text())
    assert record["checkpoint"]["kind"] == "lightning" and record["model"]["class"] == "TitansForCausalLM"
    assert set(record["results"]["exact_match"]) == {"niah_single_1/512", "niah_single_2/512"}
    assert len(record["results"]["samples"]) == 4
    assert all(Path(f).is_file() for f in record["figures"])
    assert "| niah_single_1 |" in record["tables"]["exact_match"]
    out, err = capsys.readouterr()  # the paths of what it wrote on stdout, a progress bar per task on stderr
    assert f"Results written to {path}" in out and record["figures"]
    assert all(f"Figure written to {f}" in out for f in record["figures"]) and "_niah_heatmap.png" in out
    assert "S-NIAH niah_single_1: 100%" in err and "S-NIAH niah_single_2: 100%" in err and "%|" not in out

    path = evaluate([f"ckpt={ckpt}", "suite=babilong_offline", "suite.tasks=[qa1]", "suite.lengths=[0,400]",
                      "suite.samples_per_cell=2", f"output_dir={tmp_path}", "output_name=bab"])
    record = read_record(path)
    assert path.name == "bab.json" and set(record["results"]["acc"]) == {"qa1/0", "qa1/400"}
    assert all(key in record for key in REQUIRED_KEYS)
    out, err = capsys.readouterr()
    assert f"Results written to {path}" in out and "Figure written to" in out and "_babilong.png" in out
    assert "BABILong: 100%" in err


def test_titans_hugging_face_directory_loads_for_evaluation(tmp_path):
    from titans.models import build_causal_lm

    tokenizer = tiny_tokenizer()
    model = build_causal_lm("transformer", "tiny", vocab_size=len(tokenizer), n_layers=1, d_model=32, n_heads=2).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_model_and_tokenizer(tmp_path)
    ids = torch.tensor([tokenizer.encode("The sky is blue.")])
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, model(input_ids=ids).logits)  # the same float32 weights
    assert loaded_tokenizer.encode("The sky is blue.") == ids[0].tolist()
    assert not loaded.training


def test_hub_check_names_the_reason(monkeypatch):
    from titans.hub import hub_unavailable_reason

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert "HF_DATASETS_OFFLINE" in hub_unavailable_reason()
    for flag in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # the discard port: nothing listens there
    assert "cannot connect to 127.0.0.1:9" in hub_unavailable_reason(timeout_s=1.0)
