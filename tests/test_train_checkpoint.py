"""A checkpoint written by train.py loads on its own, converts to a Hugging Face directory, and both give
the same logits as the trained LightningModule."""

import subprocess
import sys

import pytest
import torch

from train_helpers import ROOT, SMALL, run_dirs, run_train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("logs")
    run_train([*SMALL, "model=mac", "logger=csv", "model.net.segment_len=16"], log_dir)
    return run_dirs(log_dir)[0]


def test_checkpoint_and_converted_directory_give_the_same_logits(trained_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from titans.training import LitCausalLM
    from titans.eval.loading import load_model_and_tokenizer

    ckpt = trained_run / "checkpoints" / "last.ckpt"
    lit = LitCausalLM.load_from_checkpoint(ckpt, map_location="cpu").eval()
    model, tokenizer = load_model_and_tokenizer(ckpt)
    assert model.config.variant == "mac" and len(tokenizer) == model.config.vocab_size

    out = tmp_path / "hf"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_checkpoint.py"), str(ckpt), str(out)],
                   check=True, capture_output=True)
    hf_model = AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tok = AutoTokenizer.from_pretrained(out)

    text = "Shall I compare thee to a summer's day?"
    ids = torch.tensor([tokenizer.encode(text)])
    assert hf_tok.encode(text) == tokenizer.encode(text)
    with torch.no_grad():
        reference = lit(ids)
        torch.testing.assert_close(model(input_ids=ids).logits, reference)
        torch.testing.assert_close(hf_model(input_ids=ids).logits, reference)


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
