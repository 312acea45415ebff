"""Perplexity by length and by position (Figure 7's y-axis) against a direct computation from the logits.

float32 results are compared through tests/numerics.py: against the direct computation with the model in float64,
within 8x the direct float32 computation's own error."""

from __future__ import annotations

import math

import pytest
import torch

from eval_helpers import tiny_llama
from numerics import assert_within_reference_error, float64_copy
from titans.eval.perplexity import (evaluate_perplexity, markdown_perplexity, perplexity_by_length,
                                    perplexity_by_position, position_buckets, token_nll, windows)
from titans.models import build_causal_lm

VOCAB = 50


def _titans(variant="lmm", seed=0):
    torch.manual_seed(seed)
    return build_causal_lm(variant, "tiny", vocab_size=VOCAB, n_layers=2, d_model=32, n_heads=2,
                           segment_len=16, window=16, match_params=False).eval()


def _direct_nll(model, batch):
    """-log softmax(logits)[next token], written out."""
    with torch.no_grad():
        logits = model(input_ids=batch).logits
    log_probs = torch.log_softmax(logits[:, :-1] if logits.dtype == torch.float64 else logits[:, :-1].float(), dim=-1)
    return -log_probs.gather(-1, batch[:, 1:].unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("make", [lambda s: _titans("lmm", s), lambda s: _titans("mac", s),
                                  lambda s: tiny_llama(VOCAB, max_position_embeddings=128, seed=s)])
def test_token_nll_is_the_next_token_cross_entropy(make, single_thread, tol_seed):
    model = make(tol_seed)
    batch = torch.randint(0, VOCAB, (2, 40))
    expected, expected64 = _direct_nll(model, batch), _direct_nll(float64_copy(model), batch)
    assert token_nll(model, batch).shape == (2, 39)
    assert_within_reference_error(token_nll(model, batch), expected64, expected, what="whole")
    assert_within_reference_error(token_nll(model, batch, chunk_size=7), expected64, expected, what="chunks of 7")


def test_by_length_and_by_position_match_a_direct_computation(single_thread, tol_seed):
    model = _titans("lmm", tol_seed)
    model64 = float64_copy(model)
    tokens = torch.randint(0, VOCAB, (200,))
    n_tokens, lengths = 96, [16, 32, 48]
    by_length = perplexity_by_length(model, tokens, lengths, n_tokens, batch_size=2)
    for n in lengths:
        rows = tokens[:n_tokens].reshape(-1, n)  # every length scores the same 96 tokens
        nll = torch.cat([_direct_nll(model, row[None]) for row in rows])
        nll64 = torch.cat([_direct_nll(model64, row[None]) for row in rows])
        assert nll.shape == (n_tokens // n, n - 1)
        # exp(mean) turns the mean's absolute error into a relative one: the scale is ppl x max(1, mean)
        ppl64 = math.exp(nll64.mean().item())
        assert_within_reference_error(by_length[n], ppl64, math.exp(nll.mean().item()),
                                      scale=ppl64 * max(1.0, nll64.mean().item()), what=f"length {n}")
    # shorter windows give every token less context: a different number for the same tokens
    assert len({round(v, 6) for v in by_length.values()}) == len(lengths)

    longest = torch.cat([_direct_nll(model, row[None]) for row in tokens[:n_tokens].reshape(-1, 48)])
    longest64 = torch.cat([_direct_nll(model64, row[None]) for row in tokens[:n_tokens].reshape(-1, 48)])
    results = evaluate_perplexity(model, tokens, lengths, n_tokens, n_buckets=4, batch_size=2)
    assert results["by_length"] == {str(n): v for n, v in by_length.items()}  # the same computation
    assert list(results["by_position"]) == ["0-12", "12-24", "24-35", "35-47"]
    for key, value in results["by_position"].items():
        a, b = map(int, key.split("-"))
        mean64 = longest64[:, a:b].mean().item()
        assert_within_reference_error(value, math.exp(mean64), math.exp(longest[:, a:b].mean().item()),
                                      scale=math.exp(mean64) * max(1.0, mean64), what=f"positions {key}")
    table = markdown_perplexity(results)
    assert "| ppl at length |" in table and "| positions | 0-12 |" in table


def test_buckets_and_windows():
    assert position_buckets(9, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert position_buckets(4, 10) == [(0, 1), (1, 2), (2, 3)]
    nll = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    assert perplexity_by_position(nll, [(0, 1), (1, 3)]) == pytest.approx({(0, 1): math.exp(2.0),
                                                                           (1, 3): math.exp(3.5)})
    assert windows(torch.arange(10), 3, 9).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(ValueError, match="not a multiple"):
        windows(torch.arange(10), 3, 8)
    with pytest.raises(ValueError, match="fewer than n_tokens"):
        windows(torch.arange(10), 4, 12)


def test_perplexity_suite_on_a_lightning_checkpoint(tmp_path):
    """eval.py suite=perplexity: the bundled corpus' validation split, a result file with both readings and a plot."""
    from pathlib import Path

    from eval_helpers import evaluate
    from titans.data import build_tokenizer
    from titans.eval.results import read_record
    from titans.training.lit_module import LitCausalLM

    tokenizer = build_tokenizer(kind="bytes")
    net = build_causal_lm("lmm", "tiny", vocab_size=len(tokenizer), n_layers=1, d_model=32, n_heads=2)
    lit = LitCausalLM(net=net, optimizer=dict(lr=1e-3), scheduler=dict(warmup_steps=1),
                      tokenizer=tokenizer.titans_config)
    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": lit.state_dict(), "hyper_parameters": dict(lit.hparams)}, ckpt)
    path = evaluate([f"ckpt={ckpt}", "suite=perplexity", "suite.lengths=[32,64]", "suite.n_tokens=128",
                      "suite.position_buckets=2", f"output_dir={tmp_path}"])
    record = read_record(path)
    results = record["results"]
    assert record["suite"] == "perplexity" and results["lengths"] == [32, 64] and results["n_tokens"] == 128
    assert set(results["by_length"]) == {"32", "64"} and list(results["by_position"]) == ["0-32", "32-63"]
    assert all(1 < v < 10 * len(tokenizer) for v in results["by_length"].values())
    assert all(Path(f).is_file() for f in record["figures"])
