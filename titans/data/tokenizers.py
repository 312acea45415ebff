"""Tokenizers, chosen by config: every kind is returned as a `transformers.PreTrainedTokenizerFast`, so it
can be saved next to a model (`save_pretrained`) and used by lm-eval.

    build_tokenizer(kind="bpe", vocab_size=4096)   # byte-level BPE trained on data/shakespeare/train.txt
    build_tokenizer(kind="bytes")                  # 256 byte symbols (id = byte value) + EOS
    build_tokenizer(kind="dna")                    # one token per nucleotide (A, C, G, T, N) + EOS, <unk>
    build_tokenizer(kind="llama2", name_or_path="meta-llama/Llama-2-7b-hf")  # the paper's 32K tokenizer,
        # or a local directory / SentencePiece `tokenizer.model` file, e.g. the bundled Mistral-7B v0.1
        # tokenizer data/tokenizers/mistral-7b-v0.1.model (32K SentencePiece, same kind as Llama-2).

All kinds have an EOS token (documents are joined with it) and pad_token = eos_token; len(tok) is the
vocabulary size a model needs (see titans.data.vocab.check_vocab). `tok.titans_config` is the dict that
rebuilds it: build_tokenizer(**tok.titans_config) (store it in checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from titans.data.corpus import read_documents
from titans.data.paths import data_dir, resolve_path
from titans.errors import DataUnavailableError, first_line
from titans.hub import require_hub

EOS_TOKEN = "<|endoftext|>"
KINDS = ("bpe", "bytes", "llama2", "dna")
DEFAULT_BPE_VOCAB_SIZE = 4096
DEFAULT_LLAMA2 = "meta-llama/Llama-2-7b-hf"
BUNDLED_SENTENCEPIECE = "data/tokenizers/mistral-7b-v0.1.model"


def build_tokenizer(
    kind: str = "bpe",
    vocab_size: int | None = None,
    name_or_path: str | None = None,
    train_file: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> PreTrainedTokenizerFast:
    """Build the tokenizer `kind` ("bpe", "bytes", "llama2" or "dna").

    bpe:    vocab_size (default 4096) byte-level BPE trained on `train_file` (default
            data/shakespeare/train.txt), cached as JSON in `cache_dir` (default data/tokenizers/) and
            retrained when the cached file for this vocab size and corpus is missing (or holds more tokens
            than vocab_size). Deterministic. A tiny corpus may yield fewer than vocab_size tokens.
    bytes:  vocab 257 (256 bytes + EOS); vocab_size, if given, must be 257.
    dna:    character-level nucleotides, vocab 7 (EOS, <unk>, A, C, G, T, N; see titans.data.dna).
    llama2: `name_or_path` is a hub name (default meta-llama/Llama-2-7b-hf), a local tokenizer directory,
            or a SentencePiece .model file. Offline / unreachable hub -> DataUnavailableError (one line).
    """
    if kind == "bpe":
        vocab_size = vocab_size or DEFAULT_BPE_VOCAB_SIZE
        tok = _bpe(vocab_size, train_file, cache_dir)
    elif kind == "bytes":
        tok = _bytes()
    elif kind == "llama2":
        tok = _llama2(name_or_path or DEFAULT_LLAMA2)
    elif kind == "dna":
        from titans.data.dna import dna_tokenizer

        tok = dna_tokenizer()
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind != "bpe" and vocab_size is not None and vocab_size != len(tok):
        raise ValueError(
            f"tokenizer kind={kind!r} has a fixed vocabulary of {len(tok)} tokens, but vocab_size={vocab_size} "
            f"was given: drop vocab_size (or set it to {len(tok)})"
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    given = {"vocab_size": vocab_size, "name_or_path": name_or_path,
             "train_file": train_file, "cache_dir": cache_dir}
    tok.titans_config = {"kind": kind, **{k: (str(v) if isinstance(v, os.PathLike) else v)
                                          for k, v in given.items() if v is not None}}
    return tok


_PROBE = ("The quick brown fox, 1234567890 jumps!\n\n  Over\tthe lazy dog's back — Ünïcödé ☃ 漢字 ...\n"
          "def f(x):\n    return x ** 2  # code\n")


def tokenizer_fingerprint(tok: PreTrainedTokenizerFast) -> str:
    """sha256 over what decides the ids a tokenizer produces: its vocabulary, EOS id and the encoding of a
    probe text (stable across `tokenizers` versions and file formats). Used as a cache / shard key."""
    backend = tok.backend_tokenizer
    payload = json.dumps([sorted(backend.get_vocab(with_added_tokens=True).items()), tok.eos_token_id,
                          backend.encode(_PROBE, add_special_tokens=False).ids])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN)


# ----------------------------------------------------------------------------------------------- bpe
def _bpe(vocab_size: int, train_file, cache_dir) -> PreTrainedTokenizerFast:
    if vocab_size < 257:
        raise ValueError(f"bpe vocab_size={vocab_size} is too small: it needs 256 bytes + EOS, so at least 257")
    train_file = resolve_path(train_file) if train_file else data_dir() / "shakespeare" / "train.txt"
    cache_dir = Path(cache_dir) if cache_dir else data_dir() / "tokenizers"
    if not train_file.is_file():
        raise DataUnavailableError(
            f"BPE training text {train_file} is missing: restore data/shakespeare/ (git checkout data/ or "
            f"python scripts/build_corpus.py) or pass tokenizer.train_file=PATH"
        )
    corpus_sha = hashlib.sha256(train_file.read_bytes()).hexdigest()
    cached = cache_dir / f"bpe{vocab_size}-{corpus_sha[:8]}.json"
    if cached.is_file():
        try:
            backend = Tokenizer.from_file(str(cached))
        except Exception:  # unreadable (truncated, another format): train again
            backend = None
        # smaller only when the corpus has too few distinct pairs: training again would give the same
        if backend is not None and backend.get_vocab_size() <= vocab_size:
            return _wrap(backend)
    backend = train_bpe(read_documents(train_file), vocab_size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    backend.save(str(tmp))
    tmp.replace(cached)
    return _wrap(backend)


def train_bpe(documents: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (GPT-2 style pre-tokenization, no prefix space); EOS is id 0. Deterministic for a
    given corpus: the `tokenizers` trainer breaks frequency ties by pair order."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    backend.train_from_iterator(documents, trainer=trainer, length=len(documents))
    return backend


# --------------------------------------------------------------------------------------------- bytes
def _byte_symbols() -> list[str]:
    """GPT-2's byte -> printable unicode map (what the ByteLevel pre-tokenizer emits), in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def _bytes() -> PreTrainedTokenizerFast:
    vocab = {symbol: byte for byte, symbol in enumerate(_byte_symbols())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([EOS_TOKEN])  # id 256
    return _wrap(backend)


# -------------------------------------------------------------------------------------------- llama2
def _llama2(name_or_path: str) -> PreTrainedTokenizerFast:
    path = resolve_path(name_or_path)
    if path.is_file() or path.is_dir():
        try:
            tok = _from_sentencepiece_file(path) if path.is_file() else _from_directory(path)
        except Exception as err:  # noqa: BLE001 - tokenizers/transformers raise many kinds on a malformed file
            what = ("a tokenizer directory (tokenizer.json / tokenizer_config.json or tokenizer.model)" if path.is_dir()
                    else "a SentencePiece .model file")
            raise ValueError(f"tokenizer.name_or_path={name_or_path} is not a readable tokenizer "
                             f"({first_line(err)}): give {what}, e.g. {BUNDLED_SENTENCEPIECE}") from err
    elif _looks_like_path(name_or_path):
        raise DataUnavailableError(
            f"tokenizer path {name_or_path} does not exist: give a tokenizer directory or a SentencePiece "
            f".model file (e.g. tokenizer.name_or_path={BUNDLED_SENTENCEPIECE}), or use tokenizer=bpe"
        )
    else:
        tok = _from_hub(name_or_path)
    if not isinstance(tok, PreTrainedTokenizerFast):
        raise TypeError(f"{name_or_path} loaded as {type(tok).__name__}, not a fast tokenizer: give a "
                        f"directory with tokenizer.json or a SentencePiece .model file")
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer {name_or_path} has no EOS token: set one in its tokenizer_config.json")
    return tok


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.endswith((".model", ".json")) or name.count("/") > 1


def _from_sentencepiece_file(path: Path) -> PreTrainedTokenizerFast:
    """A Llama-style SentencePiece model file -> LlamaTokenizer (fast, converted by transformers)."""
    from transformers import LlamaTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(path.resolve(), Path(tmp) / "tokenizer.model")
        return LlamaTokenizer.from_pretrained(tmp)


def _from_directory(path: Path) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer, LlamaTokenizer

    has_hf_files = (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()
    if not has_hf_files and (path / "tokenizer.model").is_file():
        return LlamaTokenizer.from_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path))


def _from_hub(name: str) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    advice = (f"give a local tokenizer directory or SentencePiece .model file as tokenizer.name_or_path "
              f"(offline 32K stand-in: {BUNDLED_SENTENCEPIECE}), or use tokenizer=bpe (the offline default)")
    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except OSError:
        pass
    require_hub(f"tokenizer {name!r} (not in the local Hugging Face cache)", advice)
    try:
        return AutoTokenizer.from_pretrained(name)
    except OSError as err:  # gated repo without a token, unknown name, network error
        raise DataUnavailableError(f"cannot load tokenizer {name!r} from the hub ({first_line(err)}); "
                                   f"Llama-2 is gated: run `hf auth login` after accepting its license, or "
                                   f"{advice}") from err
