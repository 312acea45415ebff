"""MQAR generator (titans/data/mqar.py): layout, targets, the gap, disjoint streams, errors, the datamodule."""

import json

import pytest
import torch

from titans.data.mqar import (BOS, IGNORE_INDEX, TRAIN, VALIDATION, MQARDataModule, MQARSpec, mqar_sample)
from train_helpers import run_dirs, run_train

SPEC = MQARSpec(seq_len=96, num_pairs=6, gap=40, num_keys=16, num_filler=5)


def _bands(spec):
    K = spec.num_keys
    return range(1, K + 1), range(K + 1, 2 * K + 1), range(2 * K + 1, 2 * K + 1 + spec.num_filler)


def _pairs(ids, spec):
    n = spec.num_pairs
    return dict(zip(ids[1:1 + 2 * n:2].tolist(), ids[2:2 + 2 * n:2].tolist()))


@pytest.mark.parametrize("index", range(20))
def test_layout_bands_and_targets(index):
    s = mqar_sample(SPEC, seed=3, split=TRAIN, index=index)
    ids, labels = s["input_ids"], s["labels"]
    assert ids.shape == labels.shape == (SPEC.seq_len,) and ids.dtype == labels.dtype == torch.long
    keys, values, filler = _bands(SPEC)
    assert ids[0] == BOS and SPEC.vocab_size == 1 + 2 * 16 + 5
    pairs = _pairs(ids, SPEC)
    assert len(pairs) == SPEC.num_pairs and all(k in keys for k in pairs)  # distinct keys from their band
    assert len(set(pairs.values())) == SPEC.num_pairs and all(v in values for v in pairs.values())
    # the gap: only filler between the last pair and the query region
    gap = ids[1 + 2 * SPEC.num_pairs: SPEC.query_start]
    assert len(gap) == 40 and all(int(t) in filler for t in gap)
    # every supervised position holds the value of the key just before it; each key is asked once
    supervised = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
    assert len(supervised) == SPEC.queries
    asked = [int(ids[p - 1]) for p in supervised]
    assert len(set(asked)) == len(asked) and set(asked) <= set(pairs)
    for p in supervised:
        assert p - 1 >= SPEC.query_start
        assert int(labels[p]) == int(ids[p]) == pairs[int(ids[p - 1])]
    # outside the queries the query region is filler: no key or value appears there but the asked pairs
    others = [int(t) for i, t in enumerate(ids) if i >= SPEC.query_start and i not in supervised
              and i + 1 not in supervised]
    assert all(t in filler for t in others)


def test_every_query_is_farther_than_the_gap_from_every_pair():
    for index in range(50):
        labels = mqar_sample(SPEC, seed=0, split=TRAIN, index=index)["labels"]
        first_query_key = int((labels != IGNORE_INDEX).nonzero()[0]) - 1
        assert first_query_key - 2 * SPEC.num_pairs > SPEC.gap  # last pair value sits at 2 * num_pairs


def test_contiguous_queries_when_the_region_is_exactly_full():
    spec = MQARSpec(seq_len=1 + 8 + 0 + 8, num_pairs=4, gap=0, num_keys=8, num_filler=0)
    s = mqar_sample(spec, seed=0, split=TRAIN, index=0)
    assert (s["labels"] != IGNORE_INDEX).nonzero().flatten().tolist() == [10, 12, 14, 16]


def test_samples_are_deterministic_and_streams_disjoint():
    a = mqar_sample(SPEC, seed=1, split=TRAIN, index=7)
    b = mqar_sample(SPEC, seed=1, split=TRAIN, index=7)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    train = {tuple(mqar_sample(SPEC, 1, TRAIN, i)["input_ids"].tolist()) for i in range(300)}
    val = {tuple(mqar_sample(SPEC, 1, VALIDATION, i)["input_ids"].tolist()) for i in range(300)}
    other_seed = {tuple(mqar_sample(SPEC, 2, TRAIN, i)["input_ids"].tolist()) for i in range(300)}
    assert len(train) == 300 and not train & val and not train & other_seed


def test_fewer_queries_than_pairs():
    spec = MQARSpec(seq_len=64, num_pairs=8, num_queries=3, gap=10, num_keys=16, num_filler=4)
    assert int((mqar_sample(spec, 0, TRAIN, 0)["labels"] != IGNORE_INDEX).sum()) == 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(seq_len=40, num_pairs=8, gap=20), "too short"),
    (dict(num_pairs=9, num_keys=8), "num_keys=8"),
    (dict(num_queries=0), "num_queries"),
    (dict(gap=-1), "gap"),
    (dict(gap=4, num_filler=0), "num_filler"),
    (dict(seq_len=0), "seq_len"),
])
def test_bad_specs_say_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MQARSpec(**kwargs)


def test_datamodule_batches_vocab_and_resume():
    dm = MQARDataModule(seq_len=64, num_pairs=4, gap=20, num_keys=16, num_filler=4, batch_size=4, seed=5,
                        val_samples=10)
    assert dm.vocab_size == 1 + 32 + 4
    train = iter(dm.train_dataloader())
    batches = [next(train) for _ in range(3)]
    assert batches[0]["input_ids"].shape == (4, 64) and batches[0]["labels"].shape == (4, 64)
    # sample g of the stream is mqar_sample(seed, TRAIN, g): a resumed run continues with the next ones
    assert torch.equal(batches[2]["input_ids"][1], mqar_sample(dm.spec, 5, TRAIN, 9)["input_ids"])
    val = list(dm.val_dataloader())
    assert [len(b["input_ids"]) for b in val] == [4, 4, 2]
    assert torch.equal(val[0]["input_ids"][0], mqar_sample(dm.spec, 5, VALIDATION, 0)["input_ids"])


def test_short_layout_asks_the_same_pairs_right_after_them():
    short = SPEC.short
    assert short.gap == 0 and short.seq_len == 1 + 4 * SPEC.num_pairs and short.vocab_size == SPEC.vocab_size
    s = mqar_sample(short, seed=3, split=TRAIN, index=0)
    ids, labels = s["input_ids"], s["labels"]
    pairs = _pairs(ids, short)
    supervised = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
    # no filler anywhere: the query pairs fill the rest of the sequence, each value after its key
    assert supervised == list(range(short.query_start + 1, short.seq_len, 2))
    assert all(int(labels[p]) == pairs[int(ids[p - 1])] for p in supervised)


def test_length_warmup_covers_exactly_the_first_steps():
    dm = MQARDataModule(seq_len=64, num_pairs=4, gap=20, num_keys=16, num_filler=4, batch_size=4, seed=5,
                        val_samples=8, warmup_steps=2)
    train = iter(dm.train_dataloader())
    shapes = [next(train)["input_ids"].shape for _ in range(4)]
    assert shapes == [(4, 17), (4, 17), (4, 64), (4, 64)]  # 2 steps of 4 samples short, then the gap layout
    assert {tuple(b["input_ids"].shape) for b in dm.val_dataloader()} == {(4, 64)}  # validation: the target layout
    # the stream stays a function of the sample index, so a resumed run sees what it would have seen
    short_item = dm.train_dataloader().dataset[7]
    assert torch.equal(short_item["input_ids"], mqar_sample(dm.spec.short, 5, TRAIN, 7)["input_ids"])
    with pytest.raises(ValueError, match="warmup_steps"):
        MQARDataModule(warmup_steps=-1)


def test_tiny_training_run_reports_accuracy(tmp_path):
    """train.py with experiment=mqar_gap: no tokenizer, the model's vocabulary from the task, val/acc in
    metrics.json, a final validation when max_steps is off the validation grid."""
    run_train(["experiment=mqar_gap", "model=lmm", "data.seq_len=48", "data.num_pairs=4", "data.gap=16",
               "data.batch_size=4", "data.val_samples=8", "trainer.max_steps=3", "trainer.val_check_interval=2",
               "callbacks.model_checkpoint.every_n_train_steps=2", "callbacks.progress_bar.refresh_rate=0"],
              tmp_path)
    (run,) = run_dirs(tmp_path, "mqar_gap")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 3 and 0.0 <= metrics["val/acc"] <= 1.0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["model_config"]["vocab_size"] == 1 + 2 * 64 + 16
    assert ckpt["hyper_parameters"]["tokenizer"] is None


def test_demo_recall_plans_both_settings_and_the_pairs_curve():
    from scripts import demo_recall as demo
    args = demo.parse_args(["--variants", "transformer", "lmm", "--pairs-sweep", "4", "--pairs-variants", "lmm"])
    runs = demo.plan(args)
    assert [r["name"] for r in runs] == ["transformer_within_p8", "lmm_within_p8", "transformer_beyond_p8",
                                        "lmm_beyond_p8", "lmm_beyond_p4"]
    within, beyond = runs[0], runs[2]
    # within: queries right after the pairs, the whole sequence inside the 32-token window
    assert within["gap"] == 0 and within["seq_len"] == 1 + 4 * 8 <= demo.WINDOW + 1
    assert beyond["gap"] == 64 > demo.WINDOW and beyond["seq_len"] >= 1 + 4 * 8 + 64
    for run in runs:
        MQARSpec(seq_len=run["seq_len"], num_pairs=run["pairs"], gap=run["gap"])  # every planned shape is valid
    results = [dict(r, accuracy=0.5, steps=10, seconds=60.0) for r in runs]
    table = demo.markdown(results, args, chance=1 / 64)
    assert "| lmm | 0.500 | 0.500 |" in table and "4 pairs" in table
    # the default accuracy-vs-pairs curve has at least 4 points, each a valid shape
    default = demo.parse_args([])
    curve = {r["pairs"] for r in demo.plan(default) if r["setting"] == "beyond" and r["variant"] == "lmm"}
    assert len(curve) >= 4, curve
    for run in demo.plan(default):
        MQARSpec(seq_len=run["seq_len"], num_pairs=run["pairs"], gap=run["gap"])


def test_demo_recall_redraws_from_json_without_overwriting_it(tmp_path):
    import json

    from scripts import demo_recall as demo
    args = demo.parse_args(["--variants", "swa", "lmm"])
    results = [dict(r, accuracy=0.5, steps=10, seconds=60.0, cpu_seconds=60.0) for r in demo.plan(args)]
    source = tmp_path / "mqar_2026-01-01.json"
    source.write_text(json.dumps({"date": "2026-01-01", "results": results}))
    before = source.read_text()
    assert demo.main(["--from-json", str(source), "--output-dir", str(tmp_path)]) == 0
    assert source.read_text() == before  # the source is never rewritten
    assert (tmp_path / "mqar_2026-01-01.png").is_file() and (tmp_path / "mqar_2026-01-01.md").is_file()
