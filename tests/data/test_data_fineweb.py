"""FineWebEduDataModule: prepared memory-mapped shards, local streaming, and the offline failure (the held-out split,
the passes and scripts/prepare_lm_data.py: tests/data/test_data_splits.py)."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from data_helpers import write_tiny_shards
from titans.data import DataUnavailableError, FineWebEduDataModule, ResumableSampler
from titans.data.shards import read_meta
from titans.data.split import is_held_out

DOCS = [f"Document number {i}: " + "lorem ipsum dolor sit amet " * (i % 5 + 1) for i in range(60)]


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": doc, "id": i}) + "\n" for i, doc in enumerate(DOCS)))
    return path


def test_shards_are_memory_mapped_windows_of_the_eos_joined_stream(tmp_path):
    write_tiny_shards(tmp_path)
    meta = read_meta(tmp_path)
    assert meta["dtype"] == "uint16" and [e["tokens"] for e in meta["splits"]["train"]] == [64, 32]
    stream = []
    for n in (50, 70, 90):
        stream += list(range(n % 256, n % 256 + n // 2)) + [256]
    on_disk = np.concatenate([np.fromfile(tmp_path / e["file"], dtype=np.uint16) for e in meta["splits"]["train"]])
    # 105 ids + 3 EOS = 108 tokens -> a full 64-token shard, then the last whole 32-token sequence
    assert len(stream) == 108 and on_disk.tolist() == stream[:96]

    dm = FineWebEduDataModule(shards_dir=tmp_path, seq_len=16, batch_size=2, val_batches=1)
    assert dm.tokenizer_config == {"kind": "bytes"}  # taken from meta.json
    dm.setup()
    assert len(dm.train_set) == 6
    assert dm.train_set[5]["input_ids"].tolist() == stream[80:96]
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (2, 16) and batch["input_ids"].dtype == torch.long
    val = list(dm.val_dataloader())
    assert len(val) == 1 and val[0]["input_ids"].shape == (2, 16)


def test_shard_train_loader_resumes_and_shards_like_the_text_module(tmp_path):
    write_tiny_shards(tmp_path)
    dm = FineWebEduDataModule(shards_dir=tmp_path, seq_len=16, batch_size=2, seed=7)
    dm.setup()
    full = list(itertools.islice(iter(ResumableSampler(len(dm.train_set), seed=7)), 100))
    dm.trainer = SimpleNamespace(global_rank=1, world_size=2, global_step=5, accumulate_grad_batches=1)
    start = 5 * 1 * 2 * 2
    batch = next(iter(dm.train_dataloader()))["input_ids"]
    want = torch.stack([dm.train_set[full[start + 1]]["input_ids"], dm.train_set[full[start + 3]]["input_ids"]])
    assert torch.equal(batch, want)


def test_shards_with_another_tokenizer_are_rejected(tmp_path):
    write_tiny_shards(tmp_path)
    with pytest.raises(ValueError, match="tokenized with"):
        FineWebEduDataModule(shards_dir=tmp_path, tokenizer={"kind": "bpe"})


def test_missing_shard_dir_names_the_prepare_script(tmp_path):
    with pytest.raises(DataUnavailableError, match="prepare_lm_data.py"):
        FineWebEduDataModule(shards_dir=tmp_path / "nothing")


def test_offline_without_shards_fails_fast_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TITANS_DATA_DIR", str(tmp_path))  # no data/fineweb-edu shards there
    with pytest.raises(DataUnavailableError) as err:
        FineWebEduDataModule()
    message = str(err.value)
    assert "\n" not in message
    assert "data=shakespeare" in message and "prepare_lm_data.py" in message and "offline" in message


def test_unreachable_hub_without_shards_fails_fast(monkeypatch, tmp_path):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("TITANS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="unreachable.*data=shakespeare"):
        FineWebEduDataModule(tokenizer={"kind": "bytes"})


def test_a_stream_that_cannot_be_loaded_is_one_clear_line(tmp_path):
    dm = FineWebEduDataModule(name="json", data_files=str(tmp_path / "missing.jsonl"), tokenizer={"kind": "bytes"},
                              seq_len=8)
    with pytest.raises(DataUnavailableError, match="loading it failed") as err:
        dm.setup()
    assert "\n" not in str(err.value)
