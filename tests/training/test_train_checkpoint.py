"""A checkpoint written by train.py loads on its own, converts to a Hugging Face directory, and both give
the same logits as the trained LightningModule; the converted directory loads without titans and has a model card."""

import json
import subprocess
import sys

import pytest
import torch

from numerics import assert_within_reference_error, float64_copy
from remote_helpers import load_and_run_without_titans
from train_helpers import ROOT, SMALL, run_dirs, run_train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("logs")
    run_train([*SMALL, "model=mac", "logger=csv", "+model.net.segment_len=16"], log_dir)
    return run_dirs(log_dir)[0]


@pytest.fixture(scope="module")
def converted(trained_run, tmp_path_factory):
    """The run's last checkpoint converted by scripts/convert_checkpoint.py, with an eval.py result file of it."""
    from titans.eval.loading import load_model_and_tokenizer
    from titans.eval.model_card import find_result_files
    from titans.eval.results import build_record, write_record

    tmp, ckpt = tmp_path_factory.mktemp("converted"), trained_run / "checkpoints" / "last.ckpt"
    model, _ = load_model_and_tokenizer(ckpt)
    results = {"lm_eval": {"titans_local_multiple_choice": {"acc,none": 0.625, "acc_stderr,none": 0.1}}}
    record = write_record(build_record("smoke", ckpt, {}, model, results), tmp / "results", "smoke_run")
    write_record(build_record("smoke", tmp / "other.ckpt", {}, model, results), tmp / "results", "other")
    assert find_result_files(ckpt, tmp / "results") == [record]  # the result files of this checkpoint only
    out = tmp / "hf"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_checkpoint.py"), str(ckpt), str(out),
                    "--results", str(record)], check=True, capture_output=True)
    return {"dir": out, "record": record}


@pytest.mark.numerics
def test_checkpoint_and_converted_directory_give_the_same_logits(trained_run, converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from titans.training import LitCausalLM
    from titans.eval.loading import load_model_and_tokenizer

    ckpt = trained_run / "checkpoints" / "last.ckpt"
    lit = LitCausalLM.load_from_checkpoint(ckpt, map_location="cpu").eval()
    model, tokenizer = load_model_and_tokenizer(ckpt)
    assert model.config.variant == "mac" and len(tokenizer) == model.config.vocab_size

    out = converted["dir"]
    hf_model = AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tok = AutoTokenizer.from_pretrained(out)

    text = "Shall I compare thee to a summer's day?"
    ids = torch.tensor([tokenizer.encode(text)])
    assert hf_tok.encode(text) == tokenizer.encode(text)
    with torch.no_grad():  # each within 8x the float32 Lightning module's own error (tests/numerics.py)
        reference, expected = lit(ids), float64_copy(lit.net)(input_ids=ids).logits
        assert_within_reference_error(model(input_ids=ids).logits, expected, reference, what="load_model_and_tokenizer")
        assert_within_reference_error(hf_model(input_ids=ids).logits, expected, reference, what="converted")


@pytest.mark.numerics
def test_converted_directory_loads_without_titans_and_has_a_model_card(trained_run, converted, tmp_path,
                                                                      single_thread):
    """scripts/convert_checkpoint.py with an eval.py result file: the directory loads where titans cannot be imported
    and generates what the package's model generates, its runtime options are the portable ones, and README.md
    states the architecture, size, training data and tokens, the commit, the results and how to load it."""
    from titans.eval.loading import load_model_and_tokenizer
    from titans.eval.results import git_commit

    ckpt, out = trained_run / "checkpoints" / "last.ckpt", converted["dir"]
    model, tokenizer = load_model_and_tokenizer(ckpt)
    config = json.loads((out / "config.json").read_text())
    assert config["memory"]["compile"] is False and config["memory"]["impl"] == "scan"

    ids = torch.tensor([tokenizer.encode("Shall I compare thee to a summer's day?")])
    with torch.no_grad():
        expected = model.generate(ids, max_new_tokens=8, do_sample=False)
    loaded = load_and_run_without_titans({"run": {"dir": out, "input_ids": ids.tolist(), "max_new_tokens": 8}},
                                         tmp_path)["run"]
    assert torch.equal(loaded["generated"], expected)
    with torch.no_grad():  # within 8x the float32 package model's own error (tests/numerics.py)
        assert_within_reference_error(loaded["logits"], float64_copy(model)(input_ids=ids).logits,
                                      model(input_ids=ids).logits)

    card = (out / "README.md").read_text()
    steps = torch.load(ckpt, weights_only=True)["global_step"]
    n_params = sum(p.numel() for p in model.parameters())
    commit, _ = git_commit()
    for fact in ["library_name: transformers", "- custom_code", "Titans MAC (memory as a context); variant `mac`",
                 f"{n_params:,}", "`tiny`: 4 blocks x 128 wide x 4 heads", "`model=mac`", "`data=shakespeare`",
                 "`+model.net.segment_len=16`", "`titans.data.TextDataModule`, `data/shakespeare`, sequences of 64",
                 f"training tokens | {steps * 128:,} ({steps} steps x 128 tokens)", "val/loss", f"`{commit}`",
                 "### smoke", "| titans_local_multiple_choice | acc | 0.625 |",
                 f'AutoModelForCausalLM.from_pretrained("{out}", trust_remote_code=True)',
                 f"pretrained={out},trust_remote_code=True"]:
        assert fact in card, fact
    assert "acc_stderr" not in card


def test_the_saved_tokenizer_and_card_state_what_the_run_used(trained_run, converted):
    """The tokenizer saved with the model truncates to the trained context (its model_max_length was about 1e30); the
    card shows the warm-up the schedule ran (the configured 50 capped at the run's 4 steps), not the configured one."""
    from transformers import AutoTokenizer

    from titans.eval.loading import load_model_and_tokenizer

    _, tokenizer = load_model_and_tokenizer(trained_run / "checkpoints" / "last.ckpt")
    assert tokenizer.model_max_length == 64
    saved = AutoTokenizer.from_pretrained(converted["dir"])
    assert saved.model_max_length == 64
    assert len(saved("word " * 200, truncation=True)["input_ids"]) == 64
    card = (converted["dir"] / "README.md").read_text()
    assert ("| schedule | warmup_steps 4 (configured 50, capped at the run's 4 steps), cosine decay over 4 steps to "
            "min_lr_ratio 0.1 |") in card
    assert torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)["titans_schedule"] == {
        "warmup_steps": 4, "total_steps": 4, "min_lr_ratio": 0.1}


def test_bad_checkpoint_paths_are_explained(tmp_path):
    from titans.errors import CheckpointError
    from titans.eval.loading import load_model_and_tokenizer

    with pytest.raises(CheckpointError, match="not found"):
        load_model_and_tokenizer(tmp_path / "missing")
    bogus = tmp_path / "bogus.ckpt"
    torch.save({"state_dict": {}}, bogus)
    with pytest.raises(CheckpointError, match="not a titans training checkpoint"):
        load_model_and_tokenizer(bogus)


def test_a_checkpoint_of_the_earlier_layout_still_loads(trained_run, tmp_path):
    """Checkpoints written before the LightningModule took the built network (hyper_parameters ``net`` = the builder's
    keyword arguments, ``vocab_size``) load the same way: everything rebuilds the model from ``model_config``."""
    from titans.eval.loading import load_model_and_tokenizer
    from titans.training import LitCausalLM

    ckpt = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)
    hparams = ckpt["hyper_parameters"]
    hparams["net"] = {"variant": "mac", "size": "tiny", "segment_len": 16, "n_persistent": 16}
    hparams["vocab_size"] = hparams["model_config"]["vocab_size"]
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    new_lit = LitCausalLM.load_from_checkpoint(trained_run / "checkpoints" / "last.ckpt").eval()
    old_lit = LitCausalLM.load_from_checkpoint(old).eval()
    model, tokenizer = load_model_and_tokenizer(old)
    ids = torch.tensor([tokenizer.encode("Shall I compare thee to a summer's day?")])
    with torch.no_grad():
        torch.testing.assert_close(old_lit(ids), new_lit(ids), rtol=0, atol=0)
        torch.testing.assert_close(model(input_ids=ids).logits, new_lit(ids), rtol=0, atol=0)
