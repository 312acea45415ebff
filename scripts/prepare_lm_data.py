#!/usr/bin/env python
"""Tokenize a text data set into memory-mapped shards for FineWebEduDataModule(shards_dir=OUT).

Paper setup (needs hub access; Llama-2 is gated: `hf auth login` after accepting its license):
    python scripts/prepare_lm_data.py --out data/fineweb-edu --tokenizer llama2 --max-tokens 15e9

Offline examples (local files through the `datasets` json/parquet/text builders):
    python scripts/prepare_lm_data.py --name json --data-files docs.jsonl --out /tmp/shards --tokenizer bpe
    python scripts/prepare_lm_data.py --name text --data-files data/shakespeare/train.txt --out /tmp/shards \
        --tokenizer llama2 --tokenizer-path data/tokenizers/mistral-7b-v0.1.model

Documents (in the data set's order) are joined with EOS; the first --val-tokens tokens' worth of whole
documents form the validation split, the rest the train split, each cut into shards whose length is a
multiple of --seq-len. The output (meta.json + *.bin) is described in titans/data/shards.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from titans.data.fineweb import DEFAULT_NAME, encode_documents, iter_documents  # noqa: E402
from titans.data.shards import ShardWriter, write_meta  # noqa: E402
from titans.data.tokenizers import build_tokenizer, tokenizer_fingerprint  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output directory (meta.json + shards)")
    p.add_argument("--name", default=DEFAULT_NAME, help="hub data set, or a datasets builder: json/parquet/text")
    p.add_argument("--dataset-config", default="sample-10BT", help="hub config name (FineWeb-Edu: sample-10BT, ...)")
    p.add_argument("--data-files", nargs="+", default=None, help="local files for --name json/parquet/text")
    p.add_argument("--text-field", default="text")
    p.add_argument("--tokenizer", default="llama2", choices=["bpe", "bytes", "llama2"])
    p.add_argument("--tokenizer-path", default=None, help="llama2: hub name, directory or SentencePiece .model")
    p.add_argument("--vocab-size", type=int, default=None, help="bpe vocabulary size")
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--max-tokens", type=float, default=None, help="stop after this many train tokens")
    p.add_argument("--val-tokens", type=float, default=2_000_000)
    p.add_argument("--shard-tokens", type=float, default=100_000_000)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    tokenizer = build_tokenizer(kind=args.tokenizer, vocab_size=args.vocab_size, name_or_path=args.tokenizer_path)
    vocab, eos = len(tokenizer), tokenizer.eos_token_id
    texts = iter_documents(args.name, args.dataset_config, args.data_files, args.text_field)
    writers = {split: ShardWriter(args.out, split, eos, vocab, args.seq_len, int(args.shard_tokens))
               for split in ("validation", "train")}
    val_budget, train_budget = int(args.val_tokens), int(args.max_tokens) if args.max_tokens else None
    val_seen, docs, start = 0, 0, time.time()
    for ids in encode_documents(tokenizer, texts):
        if val_seen < val_budget:
            writers["validation"].add(ids)
            val_seen += len(ids) + 1
        else:
            writers["train"].add(ids)
            if train_budget is not None and writers["train"].total_tokens + writers["train"].filled >= train_budget:
                break
        docs += 1
        if docs % 100_000 == 0:
            print(f"{docs:,} documents, {writers['train'].total_tokens:,} train tokens, "
                  f"{time.time() - start:.0f} s", flush=True)
    splits = {split: writer.close() for split, writer in writers.items()}
    source = {"name": args.name, "dataset_config": args.dataset_config, "data_files": args.data_files,
              "text_field": args.text_field, "documents": docs}
    meta = write_meta(args.out, splits, seq_len=args.seq_len, eos_token_id=eos, vocab_size=vocab,
                      tokenizer_config=tokenizer.titans_config, tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
                      source=source)
    for split, writer in writers.items():
        print(f"{split}: {writer.total_tokens:,} tokens in {len(splits[split])} shard(s)")
    print(f"wrote {meta}")


if __name__ == "__main__":
    main()
