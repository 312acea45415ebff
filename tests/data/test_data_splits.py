"""Paper-scale data fidelity on a small local stand-in in the FineWeb-Edu format (parquet files with `text` and `id`):
the held-out validation split (disjoint from training, the same on every path and for every seed), the passes a run
makes over its data (the warning, the error), and scripts/prepare_lm_data.py (splits, budget, progress, resume)."""

from __future__ import annotations

import itertools
import logging
import math
import uuid

import numpy as np
import pytest
import torch

from fineweb_standin import decoded_documents, fineweb_documents, packed_bytes, write_parquet
from scripts import prepare_lm_data
from titans.data import FineWebEduDataModule
from titans.data.budget import (FINEWEB_EDU_SUBSETS, TokenBudget, check_budget, smallest_subset_holding,
                                subset_train_tokens)
from titans.data.paths import REPO_ROOT
from titans.data.shards import ShardWriter, read_meta, train_tokens_of
from titans.data.split import document_key, is_held_out

VAL_FRACTION, VAL_DOCUMENTS, SEQ_LEN = 0.1, 12, 64
PAPER_STEP_TOKENS = 524288  # 0.5M-token optimizer steps (configs/recipe/table1.yaml)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """300 FineWeb-Edu-like documents in three parquet files."""
    docs = fineweb_documents(300)
    return docs, write_parquet(docs, tmp_path_factory.mktemp("fineweb-edu") / "sample" / "10BT")


def held_out_and_train(docs, val_fraction=VAL_FRACTION):
    held = [d for d in docs if is_held_out(d["id"], val_fraction)]
    train = [d for d in docs if not is_held_out(d["id"], val_fraction)]
    return held, train


def prepare_args(files, out, *extra):
    return ["--name", "parquet", "--data-files", *files, "--out", str(out), "--tokenizer", "bytes",
            "--seq-len", str(SEQ_LEN), "--shard-tokens", "1024", "--val-fraction", str(VAL_FRACTION),
            "--val-documents", str(VAL_DOCUMENTS), "--no-progress", *extra]


def split_tokens(out, split):
    meta = read_meta(out)
    return np.concatenate([np.fromfile(out / e["file"], dtype=np.uint16) for e in meta["splits"][split]]).tolist()


# ------------------------------------------------------------------------------ the held-out split
def test_the_split_is_a_hash_of_the_id_and_holds_out_about_val_fraction():
    ids = [f"<urn:uuid:{uuid.UUID(int=i * 7919 + 1, version=4)}>" for i in range(20000)]
    share = sum(is_held_out(i, 0.01) for i in ids) / len(ids)
    assert abs(share - 0.01) < 4 * math.sqrt(0.01 * 0.99 / len(ids))
    assert all(is_held_out(i, 0.5) for i in ids if is_held_out(i, 0.01))  # a larger fraction holds out more of the same
    # the id decides, not the text or the fields around it; a source without ids hashes the text
    doc = {"text": "some text", "id": ids[0], "url": "a"}
    assert document_key(doc) == ids[0] == document_key(dict(doc, text="other text", url="b"))
    assert document_key({"text": "some text"}) == "some text" == document_key(doc, id_field=None)


def test_prepared_validation_and_train_documents_are_disjoint_and_follow_the_hash(standin, tmp_path):
    docs, files = standin
    out = tmp_path / "shards"
    assert prepare_lm_data.main(prepare_args(files, out)) == 0
    held, train = held_out_and_train(docs)
    assert len(held) > VAL_DOCUMENTS and len(train) > 200

    # validation: the first VAL_DOCUMENTS held-out documents in the source's order, packed with EOS
    val = split_tokens(out, "validation")
    assert val == packed_bytes(d["text"] for d in held[:VAL_DOCUMENTS])[: len(val)]
    # train: every other document, in order (no budget: the whole source), none of them held out
    stream = split_tokens(out, "train")
    assert stream == packed_bytes(d["text"] for d in train)[: len(stream)]
    trained = set(decoded_documents(stream))
    assert len(trained) >= len(train) - 1 and not trained & {d["text"] for d in held}

    meta = read_meta(out)
    assert meta["documents"] == {"validation": VAL_DOCUMENTS, "train": len(train)}
    assert meta["validation_split"] == {"hash": "blake2b-64", "key": "id", "val_fraction": VAL_FRACTION,
                                        "val_documents": VAL_DOCUMENTS}
    assert meta["source"]["exhausted"] and meta["source"]["documents_read"] == len(docs)


def test_streaming_validates_on_the_same_documents_as_the_shards_for_every_seed(standin, tmp_path):
    docs, files = standin
    out = tmp_path / "shards"
    prepare_lm_data.main(prepare_args(files, out))
    from_shards = FineWebEduDataModule(shards_dir=out, seq_len=SEQ_LEN, batch_size=2)
    from_shards.setup()
    shard_windows = torch.stack([w["input_ids"] for w in from_shards.val_set])
    for seed in (0, 5):
        streaming = FineWebEduDataModule(name="parquet", data_files=files, seq_len=SEQ_LEN, batch_size=2, seed=seed,
                                         tokenizer={"kind": "bytes"}, val_fraction=VAL_FRACTION,
                                         val_documents=VAL_DOCUMENTS)
        streaming.setup()
        assert torch.equal(torch.stack([w["input_ids"] for w in streaming.val_set]), shard_windows)


def test_the_script_the_module_and_the_config_hold_out_the_same_documents_by_default():
    import inspect

    from omegaconf import OmegaConf

    args = prepare_lm_data.parse_args(["--out", "x"])
    module = inspect.signature(FineWebEduDataModule).parameters
    config = OmegaConf.load(REPO_ROOT / "configs" / "data" / "fineweb_edu.yaml")
    for key in ("val_fraction", "val_documents", "id_field"):
        assert getattr(args, key) == module[key].default == config[key], key


def test_streaming_training_never_reads_a_held_out_document(standin):
    docs, files = standin
    held, train = held_out_and_train(docs)
    dm = FineWebEduDataModule(name="parquet", data_files=files, seq_len=SEQ_LEN, batch_size=4, seed=1,
                              tokenizer={"kind": "bytes"}, val_fraction=VAL_FRACTION, val_documents=VAL_DOCUMENTS,
                              shuffle_buffer=64)
    # one pass over the training documents (the epoch's windows), window after window in stream order
    windows_per_epoch = len(packed_bytes(d["text"] for d in train)) // SEQ_LEN
    batches = itertools.islice(iter(dm.train_dataloader()), windows_per_epoch // 4)
    seen = decoded_documents(torch.cat([b["input_ids"].flatten() for b in batches]).tolist())
    assert set(seen) <= {d["text"] for d in train}
    assert len(set(seen)) >= len(train) - 5  # the epoch held every training document (the last few cut off)


# ------------------------------------------------------------------------------ the passes
def test_passes_use_the_dataset_cards_gpt2_counts_and_name_the_smallest_subset_that_holds_the_budget():
    steps_15b = math.ceil(15e9 / PAPER_STEP_TOKENS)  # what train_tokens=15e9 becomes: whole optimizer steps
    tokens = steps_15b * PAPER_STEP_TOKENS
    assert subset_train_tokens("sample-10BT", 0.01) == pytest.approx(FINEWEB_EDU_SUBSETS["sample-10BT"] * 0.99)
    assert tokens / subset_train_tokens("sample-10BT", 0.01) == pytest.approx(1.5152, abs=1e-4)
    assert smallest_subset_holding(tokens, 0.01) == "sample-100BT"
    assert smallest_subset_holding(30e9, 0.01) == "sample-100BT"
    assert smallest_subset_holding(100e9, 0.01) == "sample-350BT"
    assert smallest_subset_holding(2e12, 0.01) is None
    # each subset named is the smallest: the next smaller one does not hold the budget
    by_size = sorted(FINEWEB_EDU_SUBSETS, key=FINEWEB_EDU_SUBSETS.get)
    for budget in (15e9, 30e9, 100e9, 1e12):
        name = smallest_subset_holding(budget, 0.01)
        assert subset_train_tokens(name, 0.01) >= budget
        if by_size.index(name):
            assert subset_train_tokens(by_size[by_size.index(name) - 1], 0.01) < budget
    # docs/experiments.md's table: each Table 1 budget (whole 0.5M-token steps) over its subset, 1% held out
    for budget, subset, passes in ((15e9, "sample-100BT", 0.15), (30e9, "sample-100BT", 0.30),
                                   (100e9, "sample-350BT", 0.29)):
        read = math.ceil(budget / PAPER_STEP_TOKENS) * PAPER_STEP_TOKENS
        assert round(read / subset_train_tokens(subset, 0.01), 2) == passes
    with pytest.raises(ValueError, match="unknown FineWeb-Edu config 'sample-1BT'"):
        subset_train_tokens("sample-1BT")


def hub_module(monkeypatch, **kwargs):
    """The streaming FineWeb-Edu module as an experiment builds it; construction needs no hub, only setup() does."""
    import titans.data.fineweb as fineweb

    monkeypatch.setattr(fineweb, "require_hub", lambda *a, **k: None)
    monkeypatch.setenv("TITANS_DATA_DIR", "/nonexistent")  # no data/fineweb-edu shards
    return FineWebEduDataModule(tokenizer={"kind": "bytes"}, **kwargs)


def test_more_than_one_pass_over_a_subset_warns_and_names_the_larger_subset(monkeypatch, caplog):
    tokens = math.ceil(15e9 / PAPER_STEP_TOKENS) * PAPER_STEP_TOKENS
    dm = hub_module(monkeypatch, dataset_config="sample-10BT")
    with caplog.at_level(logging.INFO, logger="titans.data.fineweb"):
        passes = dm.check_token_budget(tokens)
    assert passes == pytest.approx(tokens / (10e9 * 0.99))
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "1.52 pass(es) over FineWeb-Edu sample-10BT" in warning and "data.dataset_config=sample-100BT" in warning

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="titans.data.fineweb"):
        assert hub_module(monkeypatch, dataset_config="sample-100BT").check_token_budget(tokens) < 0.16
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("0.15 pass(es) over FineWeb-Edu sample-100BT" in r.getMessage() for r in caplog.records)


def test_more_than_one_pass_is_an_error_when_repeats_are_not_allowed(monkeypatch):
    dm = hub_module(monkeypatch, dataset_config="sample-100BT", allow_repeat=False)
    assert dm.check_token_budget(30e9) < 1
    with pytest.raises(ValueError, match=r"1\.01 pass\(es\).*sample-100BT.*data.dataset_config=sample-350BT.*"
                                         r"data.allow_repeat=true"):
        dm.check_token_budget(100e9)
    with pytest.raises(ValueError, match="no public FineWeb-Edu subset holds it"):
        hub_module(monkeypatch, dataset_config="default", allow_repeat=False).check_token_budget(2e12)


def test_the_passes_over_prepared_shards_are_exact(standin, tmp_path, caplog):
    docs, files = standin
    out = tmp_path / "shards"
    prepare_lm_data.main(prepare_args(files, out))
    exact = train_tokens_of(read_meta(out))
    dm = FineWebEduDataModule(shards_dir=out, seq_len=SEQ_LEN, allow_repeat=False)
    assert dm.check_token_budget(exact) == 1.0  # every token once: allowed
    with pytest.raises(ValueError, match=r"exact count.*prepare_lm_data.py --max-tokens .*allow_repeat=true"):
        dm.check_token_budget(exact + SEQ_LEN)
    with caplog.at_level(logging.INFO, logger="titans.data.fineweb"):
        passes = FineWebEduDataModule(shards_dir=out, seq_len=SEQ_LEN).check_token_budget(3 * exact)
    assert passes == 3.0 and any(r.levelno == logging.WARNING for r in caplog.records)


def test_a_local_source_of_unknown_size_is_logged_not_checked(standin, caplog):
    _, files = standin
    dm = FineWebEduDataModule(name="parquet", data_files=files, tokenizer={"kind": "bytes"}, allow_repeat=False)
    with caplog.at_level(logging.INFO, logger="titans.data.fineweb"):
        assert dm.check_token_budget(10**12) is None
    assert any("size is unknown" in r.getMessage() for r in caplog.records)


def test_check_budget_logs_every_known_pass_count():
    log = logging.getLogger("test_budget")
    assert check_budget(TokenBudget(50, 100.0, "x"), allow_repeat=False, log=log) == 0.5
    assert math.isinf(TokenBudget(1, 0.0, "empty").passes)


def test_train_checks_the_passes_before_fitting_and_stops_when_the_run_would_repeat_its_shards(
        standin, tmp_path, monkeypatch):
    """train() hands the data module max_steps x tokens per step; a ValueError is train.py's one-line error."""
    from train_helpers import ROOT, SMALL, compose_train_config
    from titans.training.pipeline import train

    _, files = standin
    out = tmp_path / "shards"
    prepare_lm_data.main(prepare_args(files, out))
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    steps = train_tokens_of(read_meta(out)) // (2 * SEQ_LEN) + 1  # one step more than the shards hold
    cfg = compose_train_config(tmp_path, [*SMALL, "data=fineweb_edu", f"data.shards_dir={out}", "tokenizer=bytes",
                                          "data.allow_repeat=false", f"trainer.max_steps={steps}", "logger=none"])
    with pytest.raises(ValueError, match=r"1\.0\d pass\(es\) over the prepared shards .*data.allow_repeat=true"):
        train(cfg)


# ------------------------------------------------------------------------------ prepare_lm_data.py
def test_prepare_writes_the_budget_rounded_up_to_whole_steps_with_a_progress_bar(standin, tmp_path, capsys):
    docs, files = standin
    out = tmp_path / "shards"
    args = [a for a in prepare_args(files, out, "--max-tokens", "5000", "--batch-tokens", "640")
            if a != "--no-progress"]
    prepare_lm_data.main(args)
    assert "train tokens" in capsys.readouterr().err  # the bar
    meta = read_meta(out)
    budget = 5120  # 5000 rounded up to 8 steps of 640 tokens
    assert budget <= train_tokens_of(meta) < budget + 2 * SEQ_LEN + max(len(d["text"]) for d in docs)
    assert meta["source"]["train_budget"] == budget and not meta["source"]["exhausted"]
    assert meta["documents"]["validation"] == VAL_DOCUMENTS
    dm = FineWebEduDataModule(shards_dir=out, seq_len=SEQ_LEN, batch_size=2, allow_repeat=False)
    assert dm.check_token_budget(8 * 640) <= 1.0  # the run of that budget reads each token once


class Stopped(BaseException):
    """Stands for a kill: nothing in the script catches it."""


@pytest.mark.parametrize("stop", ["after_shard_before_checkpoint", "after_checkpoint"])
def test_a_stopped_prepare_resumes_to_the_same_shards_as_one_run(standin, tmp_path, monkeypatch, stop):
    docs, files = standin
    script = prepare_lm_data
    monkeypatch.setattr(script, "ENCODE_BATCH", 8)  # save the place often
    extra = ("--max-tokens", "20000", "--batch-tokens", "64")
    whole = tmp_path / "whole"
    script.main(prepare_args(files, whole, *extra))
    assert len(read_meta(whole)["splits"]["train"]) >= 10

    parts = tmp_path / "parts"
    flush, save = ShardWriter._flush, script.Progress.save
    calls = {"flush": 0, "save": 0}

    def stopping_flush(self):
        flush(self)
        calls["flush"] += self.split == "train"
        if stop == "after_shard_before_checkpoint" and calls["flush"] == 4:
            raise Stopped

    def stopping_save(self, *args):
        save(self, *args)
        calls["save"] += 1
        if stop == "after_checkpoint" and calls["save"] == 3:
            raise Stopped

    monkeypatch.setattr(ShardWriter, "_flush", stopping_flush)
    monkeypatch.setattr(script.Progress, "save", stopping_save)
    with pytest.raises(Stopped):
        script.main(prepare_args(files, parts, *extra))
    assert not (parts / "meta.json").exists() and (parts / "progress.json").exists()

    written = []
    monkeypatch.setattr(ShardWriter, "_flush",
                        lambda self: (self.split == "train" and written.append(len(self.shards)), flush(self)))
    monkeypatch.setattr(script.Progress, "save", save)
    script.main(prepare_args(files, parts, *extra))
    assert written and min(written) >= 2  # it continued: the first shards were not written again

    names = sorted(p.name for p in whole.iterdir())
    assert sorted(p.name for p in parts.iterdir()) == names and not [n for n in names if n.startswith("pending")]
    for name in names:
        assert (whole / name).read_bytes() == (parts / name).read_bytes(), name


def test_prepare_refuses_to_continue_with_other_settings_and_says_when_it_is_done(standin, tmp_path, capsys):
    _, files = standin
    script, out = prepare_lm_data, tmp_path / "shards"
    script.main(prepare_args(files, out))
    assert script.main(prepare_args(files, out)) == 0 and "nothing to do" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"other settings \(seq_len\)"):
        script.main(prepare_args(files, out) + ["--seq-len", "32"])
