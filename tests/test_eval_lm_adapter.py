"""The lm-eval adapter (model `titans`) against direct forwards of a tiny causal LM, offline."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from eval_helpers import tiny_llama, tiny_tokenizer
from titans.eval import TitansLM
from titans.eval.windows import rolling_windows

CONTEXTS = [("The grass is green. The sky is", " blue."),
            ("Mary moved to the bathroom. Where is Mary?", " In the bathroom."),
            ("To be", ", or not to be, that is the question.")]
DOCUMENT = "Now is the winter of our discontent made glorious summer by this sun of York. The sky is blue."


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(len(tokenizer), max_position_embeddings=256)


def _requests(kind, args_list):
    return [Instance(request_type=kind, doc={}, arguments=args, idx=i) for i, args in enumerate(args_list)]


def _direct_logprob(model, tokens: list[int], n_targets: int) -> tuple[float, bool]:
    """Sum of log-softmax of the last n_targets tokens of `tokens` from one plain forward."""
    ids = torch.tensor([tokens])
    with torch.no_grad():
        logprobs = F.log_softmax(model(ids).logits[0].float(), dim=-1)
    positions = range(len(tokens) - n_targets, len(tokens))
    total = sum(logprobs[p - 1, tokens[p]].item() for p in positions)
    greedy = all(logprobs[p - 1].argmax().item() == tokens[p] for p in positions)
    return total, greedy


def test_titans_is_registered_with_lm_eval():
    from lm_eval.api.registry import get_model

    assert get_model("titans") is TitansLM


def test_loglikelihood_equals_direct_forward(model, tokenizer):
    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=2)
    results = lm.loglikelihood(_requests("loglikelihood", CONTEXTS), disable_tqdm=True)
    for (context, continuation), (logprob, greedy) in zip(CONTEXTS, results):
        context_ids, continuation_ids = lm._encode_pair(context, continuation)
        expected, expected_greedy = _direct_logprob(model, context_ids + continuation_ids, len(continuation_ids))
        assert logprob == pytest.approx(expected, abs=1e-4)
        assert greedy == expected_greedy
        assert logprob < 0


def test_batching_does_not_change_scores(model, tokenizer):
    requests = _requests("loglikelihood", CONTEXTS)
    one = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=1).loglikelihood(requests, disable_tqdm=True)
    many = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=3).loglikelihood(requests, disable_tqdm=True)
    for (a, ga), (b, gb) in zip(one, many):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb


def test_loglikelihood_rolling_is_summed_token_loglikelihood(model, tokenizer):
    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=2)
    [result] = lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(DOCUMENT,)]), disable_tqdm=True)
    tokens = tokenizer.encode(DOCUMENT, add_special_tokens=False)
    expected, _ = _direct_logprob(model, [lm.prefix_token_id] + tokens, len(tokens))
    assert result == pytest.approx(expected, abs=1e-4)


def test_rolling_windows_match_lm_eval_reference():
    tokens = list(range(100, 137))
    for max_length in (1, 4, 10, 36, 37, 64):
        ours = rolling_windows([7], tokens, max_length)
        reference = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, 7, max_length, 1)]
        assert [w.targets for w in ours] == [pred for _, pred in reference]
        assert [w.input_ids for w in ours] == [(ctx + pred)[:-1] for ctx, pred in reference]
        assert all(len(w.input_ids) <= max_length for w in ours)


def test_documents_longer_than_the_window_are_scored_in_rolling_windows(model, tokenizer):
    window = 16
    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=window)
    tokens = tokenizer.encode(DOCUMENT, add_special_tokens=False)
    assert len(tokens) > 2 * window
    [result] = lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(DOCUMENT,)]), disable_tqdm=True)
    expected = 0.0
    for context, prediction in map(make_disjoint_window,
                                   get_rolling_token_windows(tokens, lm.prefix_token_id, window, 1)):
        expected += _direct_logprob(model, context + prediction, len(prediction))[0]
    assert result == pytest.approx(expected, abs=1e-3)
    full, _ = _direct_logprob(model, [lm.prefix_token_id] + tokens, len(tokens))
    assert result != pytest.approx(full, abs=1e-3)  # the window really was applied

    # loglikelihood: a context longer than the window keeps its last tokens
    context, continuation = DOCUMENT, " The end."
    [(logprob, _)] = lm.loglikelihood(_requests("loglikelihood", [(context, continuation)]), disable_tqdm=True)
    context_ids, continuation_ids = lm._encode_pair(context, continuation)
    kept = (context_ids + continuation_ids)[-(window + 1):]
    assert logprob == pytest.approx(_direct_logprob(model, kept, len(continuation_ids))[0], abs=1e-4)


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


def test_simple_evaluate_runs_local_tasks_of_every_output_type(model, tokenizer, tmp_path):
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
    assert results["titans_local_rolling"]["word_perplexity,none"] == pytest.approx(math.exp(-sum(logliks) / words),
                                                                                     rel=1e-4)


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
