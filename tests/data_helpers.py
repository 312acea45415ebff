"""Small data files for the tests of the data modules (a helper module: test modules import it, never each other)."""

from __future__ import annotations

from titans.data import build_tokenizer
from titans.data.shards import ShardWriter, write_meta
from titans.data.tokenizers import tokenizer_fingerprint


def write_tiny_shards(root, tokens_per_doc=(50, 70, 90), seq_len=32):
    """Hand-written shards: documents of known ids, uint16, two train shards."""
    tok = build_tokenizer("bytes")
    splits = {}
    for split, shard_tokens in (("train", 64), ("validation", 1000)):
        writer = ShardWriter(root, split, tok.eos_token_id, len(tok), seq_len, shard_tokens=shard_tokens)
        for n in tokens_per_doc:
            writer.add(range(n % 256, n % 256 + n // 2))
        splits[split] = writer.close()
    write_meta(root, splits, seq_len=seq_len, eos_token_id=tok.eos_token_id, vocab_size=len(tok),
               tokenizer_config=tok.titans_config, tokenizer_fingerprint=tokenizer_fingerprint(tok), source={})
    return tok
