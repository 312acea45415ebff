"""Tokenizers: round trips, the cached deterministic BPE, the byte vocabulary, the Llama-2 paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

import titans.data.tokenizers as tokenizers_module
from titans.data import DataUnavailableError, build_tokenizer, check_vocab, tokenizer_fingerprint
from titans.data.paths import data_dir

TEXT = "To be, or not to be: that is the question.\n  Whether 'tis nobler — Héllo ☃ world!\n\n\tEnd"
SENTENCEPIECE = data_dir() / "tokenizers" / "mistral-7b-v0.1.model"


def roundtrip(tok, text=TEXT):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return ids, tok.decode(ids)


@pytest.mark.parametrize("kind", ["bpe", "bytes"])
def test_builtin_kinds_are_hf_fast_tokenizers_that_round_trip(kind):
    tok = build_tokenizer(kind)
    assert isinstance(tok, PreTrainedTokenizerFast)
    ids, decoded = roundtrip(tok)
    assert decoded == TEXT
    assert max(ids) < len(tok)
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id is not None
    assert tok.pad_token_id == tok.eos_token_id
    assert tok.convert_ids_to_tokens(tok.eos_token_id) == "<|endoftext|>"
    # the rebuild recipe that goes into checkpoints rebuilds the same tokenizer
    assert tokenizer_fingerprint(build_tokenizer(**tok.titans_config)) == tokenizer_fingerprint(tok)


def test_bytes_vocab_is_the_256_byte_values_plus_eos():
    tok = build_tokenizer("bytes")
    assert len(tok) == 257 and tok.eos_token_id == 256
    ids, _ = roundtrip(tok)
    assert ids == list(TEXT.encode("utf-8"))
    # control characters and non-ASCII code points become their UTF-8 bytes; every byte id decodes
    assert tok("\x00\x7f\xff", add_special_tokens=False)["input_ids"] == list("\x00\x7f\xff".encode())
    assert tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(list(range(256)))) == list(range(256))
    with pytest.raises(ValueError, match="fixed vocabulary of 257"):
        build_tokenizer("bytes", vocab_size=4096)


def test_default_bpe_is_shipped_and_4096():
    shipped = sorted((data_dir() / "tokenizers").glob("bpe4096-*.json"))
    assert shipped, "the default BPE tokenizer file must ship in data/tokenizers/"
    tok = build_tokenizer("bpe")
    assert len(tok) == 4096 and tok.eos_token_id == 0
    assert tok.titans_config == {"kind": "bpe", "vocab_size": 4096}
    ids, _ = roundtrip(tok)
    assert len(ids) < len(TEXT) / 2  # it compresses English


def small_corpus(tmp_path, chars=60_000):
    corpus = tmp_path / "train.txt"
    corpus.write_text((data_dir() / "shakespeare" / "train.txt").read_text()[:chars])
    return corpus


def test_bpe_training_is_deterministic_and_cached(tmp_path, monkeypatch):
    corpus = small_corpus(tmp_path)
    a = build_tokenizer("bpe", vocab_size=300, train_file=corpus, cache_dir=tmp_path / "a")
    b = build_tokenizer("bpe", vocab_size=300, train_file=corpus, cache_dir=tmp_path / "b")
    files_a, files_b = list((tmp_path / "a").glob("*.json")), list((tmp_path / "b").glob("*.json"))
    assert len(files_a) == len(files_b) == 1
    assert files_a[0].read_bytes() == files_b[0].read_bytes()
    assert len(a) == 300 and tokenizer_fingerprint(a) == tokenizer_fingerprint(b)
    assert roundtrip(a)[1] == TEXT

    # a second build reads the cache instead of training
    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the cache file exists")

    monkeypatch.setattr(tokenizers_module, "train_bpe", no_training)
    c = build_tokenizer("bpe", vocab_size=300, train_file=corpus, cache_dir=tmp_path / "a")
    assert tokenizer_fingerprint(c) == tokenizer_fingerprint(a)
    # a different vocab size is a different cache entry, so it trains
    with pytest.raises(AssertionError, match="retrained"):
        build_tokenizer("bpe", vocab_size=280, train_file=corpus, cache_dir=tmp_path / "a")
    # so does a different corpus
    corpus.write_text(corpus.read_text() + "more text\n")
    with pytest.raises(AssertionError, match="retrained"):
        build_tokenizer("bpe", vocab_size=300, train_file=corpus, cache_dir=tmp_path / "a")


def test_bpe_retrains_when_the_cached_file_has_another_vocab_size(tmp_path):
    corpus = small_corpus(tmp_path)
    big = build_tokenizer("bpe", vocab_size=320, train_file=corpus, cache_dir=tmp_path)
    small = build_tokenizer("bpe", vocab_size=290, train_file=corpus, cache_dir=tmp_path / "ref")
    cached_small_name = next((tmp_path / "ref").glob("bpe290-*.json")).name
    big_file = next(tmp_path.glob("bpe320-*.json"))
    (tmp_path / cached_small_name).write_bytes(big_file.read_bytes())  # a wrong file under the 290 name
    again = build_tokenizer("bpe", vocab_size=290, train_file=corpus, cache_dir=tmp_path)
    assert len(big) == 320 and len(again) == 290
    assert tokenizer_fingerprint(again) == tokenizer_fingerprint(small)


def test_bpe_on_a_tiny_corpus_keeps_its_smaller_vocabulary_and_cache(tmp_path, monkeypatch):
    corpus = tmp_path / "train.txt"
    corpus.write_text("abc abd abe abf " * 200)
    tok = build_tokenizer("bpe", vocab_size=4096, train_file=corpus, cache_dir=tmp_path)
    assert 257 < len(tok) < 4096
    monkeypatch.setattr(tokenizers_module, "train_bpe", lambda *a, **k: pytest.fail("retrained"))
    assert len(build_tokenizer("bpe", vocab_size=4096, train_file=corpus, cache_dir=tmp_path)) == len(tok)


def test_bpe_missing_training_text_is_one_clear_line(tmp_path):
    with pytest.raises(DataUnavailableError, match="missing") as err:
        build_tokenizer("bpe", train_file=tmp_path / "nope.txt", cache_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_saved_tokenizer_loads_back_with_auto_tokenizer(tmp_path):
    tok = build_tokenizer("bpe")
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(TEXT, add_special_tokens=False)["input_ids"] == roundtrip(tok)[0]
    assert loaded.eos_token_id == tok.eos_token_id and len(loaded) == len(tok)
    same = build_tokenizer("llama2", name_or_path=str(tmp_path))  # any saved tokenizer directory loads
    assert tokenizer_fingerprint(same) == tokenizer_fingerprint(tok)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown tokenizer kind 'gpt2'"):
        build_tokenizer("gpt2")


def test_llama2_offline_fails_fast_with_one_line_naming_the_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as err:
        build_tokenizer("llama2", name_or_path="meta-llama/Llama-2-7b-hf-titans-test-missing")
    message = str(err.value)
    assert "\n" not in message
    assert "offline" in message and "tokenizer=bpe" in message and "name_or_path" in message


def test_llama2_missing_local_path_is_one_clear_line():
    with pytest.raises(DataUnavailableError, match="does not exist"):
        build_tokenizer("llama2", name_or_path="no/such/dir/tokenizer.model")


@pytest.mark.skipif(not SENTENCEPIECE.is_file(), reason="bundled SentencePiece model not present")
def test_llama2_kind_loads_a_local_sentencepiece_model_file():
    tok = build_tokenizer("llama2", name_or_path=str(SENTENCEPIECE.relative_to(data_dir().parent)))
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert len(tok) == 32000 and tok.eos_token_id == 2 and tok.bos_token_id == 1
    ids, decoded = roundtrip(tok)
    assert decoded == TEXT and max(ids) < 32000
    # same pieces as the SentencePiece library on ordinary text
    sentencepiece = pytest.importorskip("sentencepiece")
    sp = sentencepiece.SentencePieceProcessor(model_file=str(SENTENCEPIECE))
    plain = "To be, or not to be: that is the question."
    assert tok(plain, add_special_tokens=False)["input_ids"] == sp.encode(plain)
    check_vocab(tok, 32000)


def test_check_vocab_rejects_a_too_small_model_in_one_line():
    tok = build_tokenizer("bytes")
    check_vocab(tok, 257)
    check_vocab(tok, 320)  # padded model vocabularies are fine
    with pytest.raises(ValueError, match=r"vocab_size=256.*>= 257") as err:
        check_vocab(tok, 256)
    assert "\n" not in str(err.value)


def test_shipped_tokenizer_files_are_small():
    for path in Path(data_dir() / "tokenizers").iterdir():
        assert path.stat().st_size < 2_000_000, path


def test_llama2_unreachable_hub_fails_fast(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(DataUnavailableError, match="unreachable.*tokenizer=bpe"):
        build_tokenizer("llama2", name_or_path="meta-llama/Llama-2-7b-hf-titans-test-missing")
