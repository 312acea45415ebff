"""BABILong fine-tuning data (titans.data.babilong): only the answer is supervised, prompts are the evaluation's,
batches are deterministic and padding-safe, the hub source fails fast offline and formats rows as evaluation does."""

import pytest
import torch

from titans.data import BabilongDataModule, DataUnavailableError, build_tokenizer
from titans.data.babilong import HUB_TRAIN_DATASET, PadCollator, length_in_tokens
from titans.eval.babilong import load_babilong_hub
from titans.tasks.babilong import OFFLINE_TASKS, PROMPT, make_babilong_dataset, sample_from_hub_row
from titans.eval.metrics import BABILONG_TASK_LABELS, babilong_correct
from numerics import assert_within_reference_error, float64_copy


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(kind="bpe", vocab_size=4096)


def _module(tok, **kwargs):
    args = dict(source="offline", tasks=["qa1", "qa2", "qa3"], lengths=[0, 256], seq_len=400, batch_size=4,
                tokenizer=tok, seed=3, train_samples=50, val_samples=5, generator_seed=1)
    args.update(kwargs)
    module = BabilongDataModule(**args)
    module.setup("fit")
    return module


def _first_train_batch(module):
    return next(iter(module.train_dataloader()))


def test_labels_supervise_only_the_answer_and_eos(tok):
    module = _module(tok)
    for index in range(12):  # every (task, length) cell twice
        sample = module.train_set.sample(index)
        item = module.train_set[index]
        ids, labels = item["input_ids"], item["labels"]
        prompt_ids = tok(sample.prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tok(" " + sample.answer, add_special_tokens=False)["input_ids"]
        n = len(prompt_ids)
        assert ids[:n].tolist() == prompt_ids  # the prompt exactly as evaluation tokenizes it
        assert ids[n:].tolist() == answer_ids + [tok.eos_token_id]
        assert (labels[:n] == -100).all()
        assert labels[n:].tolist() == answer_ids + [tok.eos_token_id]


def test_decoding_the_supervised_tokens_gives_the_answer_word(tok):
    module = _module(tok)
    batch = _first_train_batch(module)
    answers = []
    for row in range(batch["input_ids"].shape[0]):
        supervised = batch["input_ids"][row][batch["labels"][row] != -100]
        assert supervised[-1].item() == tok.eos_token_id
        answers.append(tok.decode(supervised.tolist(), skip_special_tokens=True).strip())
    for answer in answers:
        assert answer in BABILONG_TASK_LABELS["qa1"], answers
    # and the evaluation's answer-word rule scores that text as correct
    sample = module.train_set.sample(0)
    item = module.train_set[0]
    decoded = tok.decode(item["input_ids"][item["labels"] != -100].tolist(), skip_special_tokens=True)
    assert decoded.strip() == sample.answer
    assert babilong_correct(sample.answer, decoded, sample.question, BABILONG_TASK_LABELS[sample.task])


def test_offline_samples_are_the_evaluation_generator_s_with_its_prompt_format(tok):
    module = _module(tok, tasks=["qa2"], lengths=[256], generator_seed=0, train_samples=3)
    expected = make_babilong_dataset(["qa2"], tok, [256], samples_per_cell=3, seed=0,
                                     haystack=module.train_set.source.haystack)
    got = [module.train_set.sample(i) for i in range(3)]
    assert [s.prompt for s in got] == [s.prompt for s in expected]
    assert [s.answer for s in got] == [s.answer for s in expected]
    for sample in got:
        assert sample.prompt.endswith(f"\nQuestion: {sample.question}\nAnswer:")
        assert sample.n_tokens <= 256


def test_batches_are_deterministic_under_a_seed(tok):
    first, again = _first_train_batch(_module(tok)), _first_train_batch(_module(tok))
    assert torch.equal(first["input_ids"], again["input_ids"]) and torch.equal(first["labels"], again["labels"])
    reshuffled = _first_train_batch(_module(tok, seed=4))
    assert not torch.equal(first["input_ids"], reshuffled["input_ids"])
    other_stories = _module(tok, generator_seed=2)
    assert other_stories.train_set.sample(0).prompt != _module(tok).train_set.sample(0).prompt
    val = [b["input_ids"] for b in _module(tok).val_dataloader()]
    val_again = [b["input_ids"] for b in _module(tok, seed=4).val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(val, val_again))  # validation does not depend on the seed


def test_training_validation_and_evaluation_stories_are_disjoint(tok):
    module = _module(tok, lengths=[0], train_samples=200, val_samples=20)
    train = {module.train_set.sample(i).prompt for i in range(len(module.train_set))}
    val = {module.val_set.sample(i).prompt for i in range(len(module.val_set))}
    evaluation = {s.prompt for s in make_babilong_dataset(OFFLINE_TASKS, tok, [0], samples_per_cell=20, seed=0)}
    assert len(train) > 550 and len(val) == 60
    assert not train & val and not train & evaluation and not val & evaluation


def test_validation_covers_every_task_and_length_from_its_first_batches(tok):
    module = _module(tok, batch_size=6, val_batches=1)
    (batch,) = list(module.val_dataloader())
    cells = {(module.val_set.sample(i).task, module.val_set.sample(i).context_length) for i in range(6)}
    assert cells == {(t, n) for t in ("qa1", "qa2", "qa3") for n in (0, 256)}
    assert batch["input_ids"].shape[0] == 6


def test_padding_is_right_padding_that_does_not_change_the_loss(tok, tol_seed):
    from titans.models import build_causal_lm

    module = _module(tok, lengths=[0, 256])
    items = [module.train_set[0], module.train_set[1]]  # a bare story and one in 256 tokens of text
    batch = module.collate_fn(items)
    lengths = [len(item["input_ids"]) for item in items]
    assert lengths[0] != lengths[1] and batch["input_ids"].shape == (2, max(lengths))
    short = lengths.index(min(lengths))
    assert (batch["input_ids"][short, min(lengths):] == tok.pad_token_id).all()
    assert (batch["labels"][short, min(lengths):] == -100).all()

    torch.manual_seed(tol_seed)
    net = build_causal_lm(variant="mac", size="tiny", vocab_size=len(tok), segment_len=128, n_persistent=16).eval()
    net64 = float64_copy(net)
    with torch.no_grad():
        padded = net(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        sums = sums64 = 0.0
        count = 0
        for item in items:  # each sample alone, no padding
            n = int((item["labels"][1:] != -100).sum())
            sums += net(input_ids=item["input_ids"][None], labels=item["labels"][None]).loss.item() * n
            sums64 += net64(input_ids=item["input_ids"][None], labels=item["labels"][None]).loss.item() * n
            count += n
    # within 8x the error of the unpadded float32 losses against the float64 model's (tests/numerics.py)
    assert_within_reference_error(padded, sums64 / count, sums / count)


def test_pad_collator_rounds_up_to_a_multiple():
    items = [{"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([-100, 6, 7])}]
    batch = PadCollator(pad_id=1, pad_to_multiple_of=8)(items)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7] + [-100] * 5]


def test_long_samples_lose_the_start_of_their_prompt_not_the_answer(tok):
    module = _module(tok, lengths=[256], seq_len=300)
    module.train_set.max_len = 64
    item = module.train_set[0]
    sample = module.train_set.sample(0)
    assert len(item["input_ids"]) == 64
    full = tok(sample.prompt, add_special_tokens=False)["input_ids"] + \
        tok(" " + sample.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert item["input_ids"].tolist() == full[-64:]
    decoded = tok.decode(item["input_ids"][item["labels"] != -100].tolist(), skip_special_tokens=True)
    assert decoded.strip() == sample.answer


def test_a_story_longer_than_its_length_is_used_bare(tok):
    module = _module(tok, tasks=["qa3"], lengths=[64], seq_len=400)
    for index in range(3):
        sample = module.train_set.sample(index)
        assert sample.n_tokens > 64
        assert sample.prompt.split("\nQuestion:")[0] == " ".join(sample.facts)  # no background text


def test_bad_offline_arguments_are_clear(tok):
    with pytest.raises(ValueError, match="qa4/qa5 need data.source=hub"):
        BabilongDataModule(source="offline", tasks=["qa4"], lengths=[0], seq_len=300, tokenizer=tok)
    with pytest.raises(ValueError, match="raise seq_len to 513"):
        BabilongDataModule(source="offline", tasks=["qa1"], lengths=[0, 512], seq_len=512, tokenizer=tok)
    with pytest.raises(ValueError, match="source must be one of"):
        BabilongDataModule(source="web", tokenizer=tok)
    assert [length_in_tokens(x) for x in (0, "512", "2k", "1M")] == [0, 512, 2048, 1024 * 1024]


def test_hub_source_fails_fast_offline_naming_the_offline_source(tok, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as err:
        BabilongDataModule(source="hub", tasks=["qa1", "qa2"], lengths=["0k", "4k"], seq_len=4096, tokenizer=tok)
    message = str(err.value)
    assert "\n" not in message
    assert HUB_TRAIN_DATASET in message and "offline mode" in message
    assert "data=babilong_offline" in message and "experiment=babilong_finetune_tiny_offline" in message
    with pytest.raises(ValueError, match="length splits"):
        BabilongDataModule(source="hub", tasks=["qa1"], lengths=["3k"], seq_len=4096, tokenizer=tok)


def test_hub_rows_are_formatted_as_the_evaluation_formats_them(tok, tmp_path, monkeypatch):
    """The hub path with a stand-in for datasets.load_dataset (a local copy of the data set is allowed offline)."""
    import datasets

    def fake_rows(task, length):
        return datasets.Dataset.from_dict({
            "input": [f"  Mary went to the garden {task} {length} {i}. John moved to the office.  " for i in range(10)],
            "question": [f" Where is Mary {i}? " for i in range(10)],
            "target": ["garden"] * 10,
        })

    calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return fake_rows(split, name)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    module = BabilongDataModule(source="hub", dataset=str(tmp_path), tasks=["qa1", "qa5"], lengths=["0k", "2k"],
                                seq_len=256, batch_size=2, tokenizer=tok, val_samples=3, train_samples=5)
    module.setup("fit")
    assert sorted(calls) == sorted((str(tmp_path), n, t) for t in ("qa1", "qa5") for n in ("0k", "2k"))
    assert len(module.train_set) == 4 * 5 and len(module.val_set) == 4 * 3
    # validation: the first val_samples rows of each (task, length); training: the rows after them
    assert {module.val_set.source.pairs[i][1] for i in range(12)} == {0, 1, 2}
    assert {module.train_set.source.pairs[i][1] for i in range(20)} == {3, 4, 5, 6, 7}
    sample = module.train_set.sample(1)
    task, length = sample.task, {0: "0k", 2048: "2k"}[sample.context_length]
    row = fake_rows(task, length)[3]
    assert sample.prompt == PROMPT.format(context=row["input"].strip(), question=row["question"].strip())
    assert sample.prompt == sample_from_hub_row(row, task, length, 3).prompt

    # the evaluation loader (suite=babilong) formats the same row identically
    monkeypatch.setattr("titans.eval.babilong.require_hub", lambda *a, **k: None)
    evaluated = load_babilong_hub(task, length)[3]
    assert evaluated.prompt == sample.prompt and evaluated.answer == sample.answer == "garden"
    item = module.train_set[1]
    assert tok.decode(item["input_ids"][item["labels"] != -100].tolist(), skip_special_tokens=True).strip() == "garden"
