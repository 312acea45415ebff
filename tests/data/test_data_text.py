"""TextDataModule: batches, packing, caching, validation, errors, and exact resume under Lightning."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from titans.data import DataUnavailableError, ResumableSampler, TextDataModule
from titans.data.corpus import DOC_SEPARATOR, read_documents
from titans.data.paths import data_dir

DOCS = ["First document.\nWith two lines.", "Second — ünïcode ☃.", "Third " * 40]


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "train.txt").write_text(f"\n{DOC_SEPARATOR}\n".join(DOCS * 3) + "\n")
    (root / "validation.txt").write_text(f"\n{DOC_SEPARATOR}\n".join(DOCS) + "\n")
    return root


def bytes_module(corpus, tmp_path, **kwargs):
    kwargs = dict(seq_len=16, batch_size=4, tokenizer={"kind": "bytes"}, cache_dir=tmp_path / "cache") | kwargs
    return TextDataModule(data_dir=corpus, **kwargs)


def test_bundled_corpus_batches(tmp_path):
    dm = TextDataModule(seq_len=128, batch_size=4, val_batches=2)  # default: bpe on data/shakespeare
    assert dm.tokenizer_config == {"kind": "bpe", "vocab_size": 4096} and dm.vocab_size == 4096
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids"}
    assert batch["input_ids"].shape == (4, 128) and batch["input_ids"].dtype == torch.long
    assert int(batch["input_ids"].max()) < dm.vocab_size
    val = list(dm.val_dataloader())
    assert len(val) == 2 and all(b["input_ids"].shape == (4, 128) for b in val)
    # more than a million training tokens, validation is held-out whole works
    assert len(dm.train_set) * 128 > 1_000_000 and len(dm.val_set) * 128 > 50_000
    text = dm.tokenizer.decode(dm.val_set[0]["input_ids"])
    assert text in (data_dir() / "shakespeare" / "validation.txt").read_text()


def test_documents_are_joined_with_eos_and_cut_into_windows(corpus, tmp_path):
    dm = bytes_module(corpus, tmp_path)
    stream = dm.token_ids("train")
    expected = []
    for doc in DOCS * 3:
        expected += list(doc.encode()) + [256]
    assert stream.tolist() == expected
    dm.setup()
    assert len(dm.train_set) == len(expected) // 16
    assert dm.train_set[2]["input_ids"].tolist() == expected[32:48]


def test_token_ids_are_cached_by_tokenizer_and_text(corpus, tmp_path, monkeypatch):
    dm = bytes_module(corpus, tmp_path)
    first = np.array(dm.token_ids("validation"))
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1 and files[0].name.startswith("corpus-validation-")
    with monkeypatch.context() as patch:  # a cache hit must not tokenize
        patch.setattr(TextDataModule, "_tokenize", lambda *a: pytest.fail("tokenized although cached"))
        assert np.array_equal(bytes_module(corpus, tmp_path).token_ids("validation"), first)
    (corpus / "validation.txt").write_text("changed text " * 10)
    other = bytes_module(corpus, tmp_path)
    assert other.token_ids("validation").tolist() != first.tolist()
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
    bpe = bytes_module(corpus, tmp_path, tokenizer={"kind": "bpe"})
    bpe.token_ids("validation")
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3


def test_validation_is_fixed_limited_and_sharded(corpus, tmp_path):
    dm = bytes_module(corpus, tmp_path, batch_size=2)
    dm.setup()
    everything = torch.cat([b["input_ids"] for b in dm.val_dataloader()])
    assert everything.shape[0] == len(dm.val_set)
    assert torch.equal(everything, torch.cat([b["input_ids"] for b in dm.val_dataloader()]))
    limited = bytes_module(corpus, tmp_path, batch_size=2, val_batches=2)
    limited.setup()
    batches = list(limited.val_dataloader())
    assert len(batches) == 2 and torch.equal(torch.cat([b["input_ids"] for b in batches]), everything[:4])
    ranks = []
    for rank in range(2):
        limited.trainer = SimpleNamespace(global_rank=rank, world_size=2, global_step=0, accumulate_grad_batches=1)
        ranks.append(torch.cat([b["input_ids"] for b in limited.val_dataloader()]))
    assert torch.equal(ranks[0], everything[0:8:2]) and torch.equal(ranks[1], everything[1:8:2])


def test_train_loader_starts_at_the_trainer_sample_index_and_shards_by_rank(corpus, tmp_path):
    dm = bytes_module(corpus, tmp_path, batch_size=2, seed=5)
    dm.setup()
    assert dm.train_start_index() == 0
    full = list(itertools.islice(iter(ResumableSampler(len(dm.train_set), seed=5)), 200))
    world, step, accumulate = 2, 3, 2
    start = step * accumulate * 2 * world
    for rank in range(world):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=world, global_step=step,
                                     accumulate_grad_batches=accumulate)
        assert dm.train_start_index() == start
        batch = next(iter(dm.train_dataloader()))["input_ids"]
        want = [full[start + rank], full[start + rank + world]]
        assert torch.equal(batch, torch.stack([dm.train_set[i]["input_ids"] for i in want]))


def test_train_loader_is_an_endless_stream(corpus, tmp_path):
    dm = bytes_module(corpus, tmp_path)
    dm.setup()
    epochs_worth = 3 * len(dm.train_set) // dm.batch_size + 1
    batches = list(itertools.islice(iter(dm.train_dataloader()), epochs_worth))
    assert len(batches) == epochs_worth


def test_missing_data_file_is_one_clear_line(tmp_path):
    (tmp_path / "train.txt").write_text("only train")
    with pytest.raises(DataUnavailableError) as err:
        TextDataModule(data_dir=tmp_path, tokenizer={"kind": "bytes"})
    message = str(err.value)
    assert "validation.txt" in message and "build_corpus.py" in message and "\n" not in message


def test_seq_len_longer_than_the_split_is_rejected(corpus, tmp_path):
    dm = bytes_module(corpus, tmp_path, seq_len=100_000)
    with pytest.raises(ValueError, match="lower seq_len"):
        dm.setup()


def test_tokenizer_object_and_what_the_data_tells_the_model(corpus, tmp_path):
    from titans.data import build_tokenizer

    tok = build_tokenizer("bytes")
    dm = TextDataModule(data_dir=corpus, tokenizer=tok, batch_size=3, seq_len=8, cache_dir=tmp_path)
    assert dm.batch_size == 3 and dm.tokenizer is tok and dm.tokenizer_config == {"kind": "bytes"}
    # the vocabulary goes to model.net and the tokenizer's config into checkpoints; a vocabulary the config sets
    # (padded, say) wins when it holds every id, and is refused in one line when it does not
    assert dm.model_kwargs({"net": {}}) == {"net": {"vocab_size": 257}, "tokenizer": {"kind": "bytes"}}
    assert dm.model_kwargs({"net": {"vocab_size": 320}})["net"] == {}
    with pytest.raises(ValueError, match="vocab_size=200: set the model's vocab_size >= 257"):
        dm.model_kwargs({"net": {"vocab_size": 200}})
    with pytest.raises(TypeError, match="micro_batch_size"):  # one name for the per-device batch
        TextDataModule(data_dir=corpus, tokenizer=tok, micro_batch_size=4)


def test_corpus_reader_splits_documents(corpus):
    assert read_documents(corpus / "validation.txt") == [d.strip("\n") for d in DOCS]


class RecordingLM(L.LightningModule):
    """Remembers every micro-batch it trains on."""

    def __init__(self, vocab_size):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, 8)
        self.head = torch.nn.Linear(8, vocab_size)
        self.seen = []

    def training_step(self, batch, batch_idx):
        ids = batch["input_ids"]
        self.seen.append(ids.clone())
        logits = self.head(self.embed(ids[:, :-1]))
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(corpus, tmp_path, max_steps, ckpt_path=None):
    dm = bytes_module(corpus, tmp_path, batch_size=2, seed=11)
    model = RecordingLM(dm.vocab_size)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=2)
    trainer = L.Trainer(max_steps=max_steps, accumulate_grad_batches=2, use_distributed_sampler=False,
                        accelerator="cpu", devices=1, logger=False, callbacks=[checkpoint], limit_val_batches=0,
                        num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return model.seen


@pytest.mark.filterwarnings("ignore")
def test_resuming_from_a_checkpoint_continues_with_the_exact_next_batch(corpus, tmp_path):
    uninterrupted = fit(corpus, tmp_path / "a", max_steps=6)
    assert len(uninterrupted) == 12  # 6 optimizer steps x 2 accumulated micro-batches
    first = fit(corpus, tmp_path / "b", max_steps=4)
    resumed = fit(corpus, tmp_path / "b", max_steps=6, ckpt_path=str(tmp_path / "b" / "ckpt" / "last.ckpt"))
    assert len(first) == 8 and len(resumed) == 4
    for got, want in zip(first + resumed, uninterrupted):
        assert torch.equal(got, want)
