"""The lm-eval adapter (model `titans`) against direct forwards of a tiny causal LM, offline.

The adapter's float32 log-likelihoods are compared through tests/numerics.py: against the direct forward of the
model in float64, within 8x the direct float32 forward's own error."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from eval_helpers import tiny_llama, tiny_tokenizer
from numerics import assert_within_reference_error, float64_copy
from titans.eval import TitansLM
from titans.eval.windows import rolling_windows

CONTEXTS = [("The grass is green. The sky is", " blue."),
            ("Mary moved to the bathroom. Where is Mary?", " In the bathroom."),
            ("To be", ", or not to be, that is the question.")]
DOCUMENT = "Now is the winter of our discontent made glorious summer by this sun of York. The sky is blue."


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture
def model(tokenizer, tol_seed):
    return tiny_llama(len(tokenizer), max_position_embeddings=256, seed=tol_seed)


@pytest.fixture
def model64(model):
    return float64_copy(model)


def _requests(kind, args_list):
    return [Instance(request_type=kind, doc={}, arguments=args, idx=i) for i, args in enumerate(args_list)]


def _direct_logprob(model, tokens: list[int], n_targets: int) -> tuple[float, bool]:
    """Sum of log-softmax of the last n_targets tokens of `tokens` from one plain forward (in float64 for a float64
    model, else in float32)."""
    ids = torch.tensor([tokens])
    with torch.no_grad():
        logits = model(ids).logits[0]
        logprobs = F.log_softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1)
    positions = range(len(tokens) - n_targets, len(tokens))
    total = sum(logprobs[p - 1, tokens[p]].item() for p in positions)
    greedy = all(logprobs[p - 1].argmax().item() == tokens[p] for p in positions)
    return total, greedy


def test_titans_is_registered_with_lm_eval():
    from lm_eval.api.registry import get_model

    assert get_model("titans") is TitansLM


def _assert_logprob(actual, model, model64, tokens, n_targets, what=""):
    """``actual`` (the adapter's float32 sum) within 8x the direct float32 forward's error against float64."""
    assert_within_reference_error(actual, _direct_logprob(model64, tokens, n_targets)[0],
                                  _direct_logprob(model, tokens, n_targets)[0], what=what)


def test_loglikelihood_equals_direct_forward(model, model64, tokenizer):
    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=2)
    results = lm.loglikelihood(_requests("loglikelihood", CONTEXTS), disable_tqdm=True)
    for (context, continuation), (logprob, greedy) in zip(CONTEXTS, results):
        context_ids, continuation_ids = lm._encode_pair(context, continuation)
        expected, expected_greedy = _direct_logprob(model, context_ids + continuation_ids, len(continuation_ids))
        _assert_logprob(logprob, model, model64, context_ids + continuation_ids, len(continuation_ids), context)
        assert greedy == expected_greedy
        assert logprob < 0


def test_batching_does_not_change_scores(model, model64, tokenizer):
    requests = _requests("loglikelihood", CONTEXTS)
    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=1)
    one = lm.loglikelihood(requests, disable_tqdm=True)
    many = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=3).loglikelihood(requests, disable_tqdm=True)
    for (context, continuation), (a, ga), (b, gb) in zip(CONTEXTS, one, many):
        context_ids, continuation_ids = lm._encode_pair(context, continuation)
        for value, batch in ((a, 1), (b, 3)):  # each as close to the float64 answer as a direct float32 forward
            _assert_logprob(value, model, model64, context_ids + continuation_ids, len(continuation_ids), batch)
        assert ga == gb


def test_loglikelihood_rolling_is_summed_token_loglikelihood(model, model64, tokenizer):
    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=2)
    [result] = lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(DOCUMENT,)]), disable_tqdm=True)
    tokens = tokenizer.encode(DOCUMENT, add_special_tokens=False)
    _assert_logprob(result, model, model64, [lm.prefix_token_id] + tokens, len(tokens))


def test_rolling_windows_match_lm_eval_reference():
    tokens = list(range(100, 137))
    for max_length in (1, 4, 10, 36, 37, 64):
        ours = rolling_windows([7], tokens, max_length)
        reference = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, 7, max_length, 1)]
        assert [w.targets for w in ours] == [pred for _, pred in reference]
        assert [w.input_ids for w in ours] == [(ctx + pred)[:-1] for ctx, pred in reference]
        assert all(len(w.input_ids) <= max_length for w in ours)


def test_documents_longer_than_the_window_are_scored_in_rolling_windows(model, model64, tokenizer):
    window = 16
    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=window)
    tokens = tokenizer.encode(DOCUMENT, add_special_tokens=False)
    assert len(tokens) > 2 * window
    [result] = lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(DOCUMENT,)]), disable_tqdm=True)
    expected = expected64 = 0.0
    for context, prediction in map(make_disjoint_window,
                                   get_rolling_token_windows(tokens, lm.prefix_token_id, window, 1)):
        expected += _direct_logprob(model, context + prediction, len(prediction))[0]
        expected64 += _direct_logprob(model64, context + prediction, len(prediction))[0]
    assert_within_reference_error(result, expected64, expected, what="windows")
    full, _ = _direct_logprob(model, [lm.prefix_token_id] + tokens, len(tokens))
    assert result != pytest.approx(full, abs=1e-3)  # the window really was applied

    # loglikelihood: a context longer than the window keeps its last tokens
    context, continuation = DOCUMENT, " The end."
    [(logprob, _)] = lm.loglikelihood(_requests("loglikelihood", [(context, continuation)]), disable_tqdm=True)
    context_ids, continuation_ids = lm._encode_pair(context, continuation)
    kept = (context_ids + continuation_ids)[-(window + 1):]
    _assert_logprob(logprob, model, model64, kept, len(continuation_ids), "kept")


def test_generate_until_is_greedy_and_stops(model, tokenizer):
    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=2)
    prompts = ["The sky is", "Where is the apple? Answer:", "The sun is"]
    outputs = lm.generate_until(_requests("generate_until", [(p, {"until": [], "max_gen_toks": 6}) for p in prompts]),
                                disable_tqdm=True)
    for prompt, output in zip(prompts, outputs):
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        for _ in range(6):  # manual greedy decoding without a cache
            with torch.no_grad():
                ids.append(model(torch.tensor([ids])).logits[0, -1].argmax().item())
        new = ids[-6:]
        if tokenizer.eos_token_id in new:
            new = new[: new.index(tokenizer.eos_token_id)]
        assert output == tokenizer.decode(new)
    # `until` cuts the text at the first stop string
    stop = outputs[0][2:4] if len(outputs[0]) >= 4 else None
    if stop:
        [cut] = lm.generate_until(_requests("generate_until", [(prompts[0], {"until": [stop], "max_gen_toks": 6})]),
                                  disable_tqdm=True)
        assert cut == outputs[0].split(stop)[0]


def test_model_object_without_tokenizer_is_a_clear_error(model):
    with pytest.raises(ValueError, match="tokenizer"):
        TitansLM(pretrained=model)


def test_simple_evaluate_runs_local_tasks_of_every_output_type(model, model64, tokenizer, tmp_path):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from titans.eval.local_tasks import write_local_tasks

    names = write_local_tasks(tmp_path)
    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=2)
    task_manager = TaskManager(include_path=str(tmp_path), include_defaults=False)
    output = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=task_manager, bootstrap_iters=0,
                                     log_samples=False)
    results = output["results"]
    assert set(names) <= set(results)
    assert results["titans_local_loglikelihood"]["perplexity,none"] > 1
    assert 0 <= results["titans_local_multiple_choice"]["acc,none"] <= 1
    assert results["titans_local_rolling"]["word_perplexity,none"] > 1
    assert results["titans_local_generate"]["exact_match,none"] in (0.0, 0.5, 1.0)
    # word perplexity is exp(-sum loglikelihood / words) over the documents
    from titans.eval.local_tasks import ROLLING_DOCS

    logliks = lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(d["text"],) for d in ROLLING_DOCS]),
                                       disable_tqdm=True)
    words = sum(len(d["text"].split()) for d in ROLLING_DOCS)
    logliks64 = []
    for d in ROLLING_DOCS:
        tokens = tokenizer.encode(d["text"], add_special_tokens=False)
        logliks64.append(_direct_logprob(model64, [lm.prefix_token_id] + tokens, len(tokens))[0])
    # exp(-x) multiplies x's absolute error into a relative one: the scale is |x| times the value
    x64 = -sum(logliks64) / words
    assert_within_reference_error(results["titans_local_rolling"]["word_perplexity,none"], math.exp(x64),
                                  math.exp(-sum(logliks) / words), scale=math.exp(x64) * max(1.0, abs(x64)))


def test_lm_eval_command_line_knows_the_titans_model(model, tokenizer, tmp_path, monkeypatch):
    """`python -m titans.eval.lm_eval_cli run --model titans --model_args pretrained=DIR ...` (in-process)."""
    import json

    from titans.eval.lm_eval_cli import main
    from titans.eval.local_tasks import write_local_tasks

    hf_dir = tmp_path / "model"
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    write_local_tasks(tmp_path / "tasks")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    main(["run", "--model", "titans", "--model_args", f"pretrained={hf_dir}", "--batch_size", "2",
          "--tasks", "titans_local_rolling", "--include_path", str(tmp_path / "tasks"),
          "--output_path", str(tmp_path / "out")])
    [result_file] = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(result_file.read_text())["results"]
    assert results["titans_local_rolling"]["word_perplexity,none"] > 1
