#!/usr/bin/env python
"""Tokenize a text data set into memory-mapped train and validation shards for FineWebEduDataModule(shards_dir=OUT).

Paper setup (needs hub access; Llama-2 is gated: `hf auth login` after accepting its license), one subset and token
budget per Table 1 size (the budget is rounded up to whole 0.5M-token optimizer steps, --batch-tokens):
    python scripts/prepare_lm_data.py --dataset-config sample-100BT --max-tokens 15e9 --out data/fineweb-edu
    python scripts/prepare_lm_data.py --dataset-config sample-100BT --max-tokens 30e9 --out data/fineweb-edu-30B
    python scripts/prepare_lm_data.py --dataset-config sample-350BT --max-tokens 100e9 --out data/fineweb-edu-100B
then train with data.shards_dir=OUT (data/fineweb-edu is the default).

Offline examples (local files through the `datasets` json/parquet/text builders):
    python scripts/prepare_lm_data.py --name json --data-files docs.jsonl --out /tmp/shards --tokenizer bpe
    python scripts/prepare_lm_data.py --name parquet --data-files 'sample/*.parquet' --out /tmp/shards \\
        --tokenizer llama2 --tokenizer-path data/tokenizers/mistral-7b-v0.1.model

Documents are read in the data set's order. A document whose id hashes below --val-fraction is held out
(titans/data/split.py, the rule the streaming path uses too): the first --val-documents of them are the validation
split, the others are written nowhere; every other document goes to the train split until it holds --max-tokens.
Each split is joined with EOS and cut into shards whose length is a multiple of --seq-len (titans/data/shards.py).

Resumable: after each shard the script saves its place (progress.json, the data set's stream position and the tokens
not yet in a shard). Run the same command again after a stop and it continues where it stopped, writing the same
shards as one uninterrupted run. meta.json, which the data module reads, is written last.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from titans.data.budget import (FINEWEB_EDU_SUBSETS, format_tokens, smallest_subset_holding,  # noqa: E402
                                subset_train_tokens)
from titans.data.fineweb import DEFAULT_NAME, load_stream  # noqa: E402
from titans.data.shards import META_FILE, ShardWriter, write_json_atomic, write_meta  # noqa: E402
from titans.data.split import check_val_fraction, document_key, is_held_out, split_description  # noqa: E402
from titans.data.tokenizers import build_tokenizer, tokenizer_fingerprint  # noqa: E402

PROGRESS_FILE = "progress.json"
SPLITS = ("validation", "train")
ENCODE_BATCH = 256  # documents tokenized together; the script saves its place only between two batches


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output directory (meta.json + shards)")
    p.add_argument("--name", default=DEFAULT_NAME, help="hub data set, or a datasets builder: json/parquet/text")
    p.add_argument("--dataset-config", default="sample-10BT",
                   help=f"hub config name (FineWeb-Edu: {', '.join(FINEWEB_EDU_SUBSETS)})")
    p.add_argument("--data-files", nargs="+", default=None, help="local files for --name json/parquet/text")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default="id", help="the field the validation split hashes (the text without one)")
    p.add_argument("--tokenizer", default="llama2", choices=["bpe", "bytes", "llama2"])
    p.add_argument("--tokenizer-path", default=None, help="llama2: hub name, directory or SentencePiece .model")
    p.add_argument("--vocab-size", type=int, default=None, help="bpe vocabulary size")
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--max-tokens", type=float, default=None,
                   help="train tokens to write (the run's train_tokens); default: the whole data set")
    p.add_argument("--batch-tokens", type=int, default=524288,
                   help="round --max-tokens up to whole optimizer steps of this many tokens (train.py's "
                        "global_batch_tokens), so the run reads each token once")
    p.add_argument("--val-fraction", type=float, default=0.01, help="share of documents held out (by id hash)")
    p.add_argument("--val-documents", type=int, default=2000, help="held-out documents in the validation split")
    p.add_argument("--shard-tokens", type=float, default=100_000_000)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def train_budget(args) -> int | None:
    if args.max_tokens is None:
        return None
    step = max(1, args.batch_tokens)
    return math.ceil(float(args.max_tokens) / step) * step


def settings_of(args, tokenizer) -> dict:
    """What makes two runs write the same shards: a resumed run must have the same."""
    return {"name": args.name, "dataset_config": args.dataset_config, "data_files": args.data_files,
            "text_field": args.text_field, "id_field": args.id_field, "tokenizer": tokenizer.titans_config,
            "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer), "seq_len": args.seq_len,
            "shard_tokens": int(args.shard_tokens), "train_budget": train_budget(args),
            "val_fraction": args.val_fraction, "val_documents": args.val_documents}


def warn_if_the_subset_is_too_small(args, budget: int | None) -> None:
    if budget is None or args.name != DEFAULT_NAME or args.dataset_config not in FINEWEB_EDU_SUBSETS:
        return
    holds = subset_train_tokens(args.dataset_config, args.val_fraction)
    if holds < budget:
        larger = smallest_subset_holding(budget, args.val_fraction)
        print(f"warning: FineWeb-Edu {args.dataset_config} holds about {format_tokens(holds)} training tokens, fewer "
              f"than the {format_tokens(budget)} asked for: the shards will be shorter"
              + (f"; --dataset-config {larger} holds them" if larger else ""), file=sys.stderr)


class Progress:
    """The saved place of a run: progress.json plus the tokens each writer holds that are not yet in a shard
    (pending-<split>-<n>.npy; progress.json names the current ones, so a stop leaves one consistent state)."""

    def __init__(self, out: Path):
        self.out, self.path = out, out / PROGRESS_FILE

    def load(self) -> dict | None:
        return json.loads(self.path.read_text()) if self.path.is_file() else None

    def save(self, state: dict, writers: dict[str, ShardWriter], count: int) -> None:
        state = dict(state, checkpoint=count, writers={})
        for split, writer in writers.items():
            name = f"pending-{split}-{count}.npy"
            np.save(self.out / name, writer.pending())
            state["writers"][split] = dict(writer.state_dict(), pending=name)
        write_json_atomic(self.path, state)
        for old in self.out.glob("pending-*.npy"):
            if old.name not in {w["pending"] for w in state["writers"].values()}:
                old.unlink()

    def restore(self, state: dict, writers: dict[str, ShardWriter]) -> None:
        for split, writer in writers.items():
            saved = state["writers"][split]
            writer.load_state(saved, np.load(self.out / saved["pending"]))


def main(argv=None) -> int:
    args = parse_args(argv)
    check_val_fraction(args.val_fraction)
    if args.val_documents <= 0:
        raise ValueError(f"--val-documents={args.val_documents} must be positive")
    tokenizer = build_tokenizer(kind=args.tokenizer, vocab_size=args.vocab_size, name_or_path=args.tokenizer_path)
    vocab, eos = len(tokenizer), tokenizer.eos_token_id
    settings, budget = settings_of(args, tokenizer), train_budget(args)
    args.out.mkdir(parents=True, exist_ok=True)
    progress = Progress(args.out)
    saved = progress.load()
    if saved is None and (args.out / META_FILE).is_file():
        raise ValueError(f"{args.out} already holds shards written without {PROGRESS_FILE}: choose another --out "
                         f"or delete it")
    if saved is not None and saved["settings"] != settings:
        changed = sorted(k for k in settings if saved["settings"].get(k) != settings[k])
        raise ValueError(f"{args.out} holds a run with other settings ({', '.join(changed)}): run the same command "
                         f"to continue it, or choose another --out")
    if saved is not None and saved.get("complete"):
        print(f"{args.out} is complete ({META_FILE} written); nothing to do")
        return 0
    warn_if_the_subset_is_too_small(args, budget)

    writers = {split: ShardWriter(args.out, split, eos, vocab, args.seq_len, int(args.shard_tokens))
               for split in SPLITS}
    stream = load_stream(args.name, args.dataset_config, args.data_files)
    read, checkpoints = 0, 0
    if saved is not None:
        progress.restore(saved, writers)
        stream.load_state_dict(saved["stream"])
        read, checkpoints = saved["documents_read"], saved["checkpoint"]
        print(f"resuming {args.out}: {read:,} documents read, {writers['train'].total_tokens:,} train tokens in "
              f"{len(writers['train'].shards)} shard(s)", file=sys.stderr)

    def val_full() -> bool:
        return writers["validation"].documents >= args.val_documents

    def train_full() -> bool:
        return budget is not None and writers["train"].whole_sequence_tokens >= budget

    def train_done() -> int:  # what the bar shows
        return min(writers["train"].whole_sequence_tokens, budget if budget is not None else math.inf)

    bar = make_bar(budget, train_done(), args.no_progress)
    examples, exhausted = iter(stream), False
    while not (train_full() and val_full()):
        batch = [ex for _, ex in zip(range(ENCODE_BATCH), examples)]
        if not batch:
            exhausted = True
            break
        shards_before = sum(len(w.shards) for w in writers.values())
        texts, targets = [], []
        for example in batch:
            held_out = is_held_out(document_key(example, args.id_field, args.text_field), args.val_fraction)
            target = "validation" if held_out else "train"
            targets.append(target)
            texts.append(example[args.text_field])
        encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        for target, encoding in zip(targets, encodings):
            if target == "validation" and not val_full():
                writers["validation"].add(encoding.ids)
            elif target == "train" and not train_full():
                writers["train"].add(encoding.ids)
        read += len(batch)
        bar.update(train_done() - bar.n)
        bar.set_postfix(documents=f"{read:,}", validation=writers["validation"].documents, refresh=False)
        if sum(len(w.shards) for w in writers.values()) > shards_before:  # a shard was written: save our place
            checkpoints += 1
            progress.save({"settings": settings, "stream": stream.state_dict(), "documents_read": read},
                          writers, checkpoints)
    bar.close()

    splits = {split: writer.close() for split, writer in writers.items()}
    if budget is not None and writers["train"].total_tokens < budget:
        print(f"warning: the data set ended after {writers['train'].total_tokens:,} train tokens, fewer than the "
              f"{budget:,} asked for: a run of that length repeats them", file=sys.stderr)
    if writers["validation"].documents < args.val_documents:
        print(f"warning: the data set holds only {writers['validation'].documents} held-out documents, not the "
              f"{args.val_documents} asked for: raise --val-fraction for a larger validation split", file=sys.stderr)
    source = {"name": args.name, "dataset_config": None if args.data_files else args.dataset_config,
              "data_files": args.data_files,
              "text_field": args.text_field, "id_field": args.id_field, "documents_read": read,
              "exhausted": exhausted, "train_budget": budget}
    meta = write_meta(args.out, splits, seq_len=args.seq_len, eos_token_id=eos, vocab_size=vocab,
                      tokenizer_config=tokenizer.titans_config, tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
                      source=source, validation_split=split_description(args.val_fraction, args.val_documents,
                                                                        args.id_field),
                      documents={split: writer.documents for split, writer in writers.items()})
    write_json_atomic(progress.path, {"settings": settings, "complete": True, "documents_read": read})
    for old in args.out.glob("pending-*.npy"):
        old.unlink()
    for split, writer in writers.items():
        print(f"{split}: {writer.documents:,} documents, {writer.total_tokens:,} tokens in {len(splits[split])} "
              f"shard(s)")
    print(f"wrote {meta}")
    return 0


def make_bar(total: int | None, initial: int, disable: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="tok", unit_scale=True, desc="train tokens", disable=disable,
                dynamic_ncols=True, mininterval=1.0)


if __name__ == "__main__":
    from titans.cli import report_expected_errors

    raise SystemExit(report_expected_errors(main)())
