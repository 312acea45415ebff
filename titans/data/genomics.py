"""Genomics data: a DNA corpus for next-nucleotide pretraining and GenomicBenchmarks classification (Table 4).

Pretraining (:class:`DNACorpusDataModule`, language-model batches like ``data=shakespeare``):
  source="fasta"      local FASTA files (plain or .gz); default ``data/dna/dm3_upstream2000.fa.gz``, the
                      D. melanogaster upstream sequences of Debian's r-bioc-biostrings package, extracted by
                      ``python scripts/prepare_dna_data.py`` (not shipped). Every 20th record is validation.
  source="synthetic"  random ACGT with planted motifs (titans.data.dna): offline, nothing to download.
  source="hub"        a Hugging Face dataset of sequences (default InstaDeepAI/human_reference_genome, hg38
                      in 6 kb pieces), streamed; offline it stops at once with one line.
Records are joined with EOS and cut into ``seq_len`` windows.

Classification (:class:`GenomicsDataModule`): one GenomicBenchmarks task (the five of the paper's Table 4, or
any other of the benchmark) or the offline planted-motif task.
  source="hub"      katarinagresova/Genomic_Benchmarks_<task> (columns seq, label; splits train, test)
  source="package"  the ``genomic-benchmarks`` package's download (to ~/.genomic_benchmarks)
  source="local"    a directory in that package's layout: <root>/{train,test}/<class name>/*.txt (one
                    sequence a file; classes numbered in sorted name order)
  source="synthetic" planted motifs (``num_classes`` classes, ``length`` nucleotides)
GenomicBenchmarks has train and test splits only: ``val_fraction`` of train (a seeded draw) is held out for
validation and model selection; the test split is used once, by the final test.
Batches: ``input_ids`` [B, T] right-padded with EOS (the model is causal, so padding after a sequence cannot
change its hidden states), ``lengths`` [B], ``labels`` [B].
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from titans.data.base import PackedLMDataModule, SplitDataModule
from titans.data.dna import encode_dna, read_fasta
from titans.data.packing import PackedWindows, pack_documents, token_dtype
from titans.data.paths import data_dir as default_data_dir
from titans.data.paths import resolve_path
from titans.errors import DataUnavailableError
from titans.hub import hub_unavailable_reason
from titans.tasks.dna_motifs import planted_motif_sample, random_sequence

#: the paper's Table 4 tasks and their number of classes
GENOMIC_BENCHMARKS = {
    "human_enhancers_cohn": 2,
    "human_enhancers_ensembl": 2,
    "human_ensembl_regulatory": 3,
    "human_nontata_promoters": 2,
    "human_ocr_ensembl": 2,
}
HUB_TEMPLATE = "katarinagresova/Genomic_Benchmarks_{task}"
DEFAULT_CORPUS = "dna/dm3_upstream2000.fa.gz"
DEFAULT_HUB_CORPUS = "InstaDeepAI/human_reference_genome"
TRAIN, VALIDATION, TEST = 0, 1, 2


def _hub_or_fail(what: str, offline_alternative: str) -> None:
    reason = hub_unavailable_reason()
    if reason:
        raise DataUnavailableError(f"{what} comes from the Hugging Face Hub, but {reason}: {offline_alternative}")


# ------------------------------------------------------------------------------------------ pretraining corpus
class DNACorpusDataModule(PackedLMDataModule):
    """Next-nucleotide pretraining windows (see the module docstring); ``tokenizer`` is the DNA tokenizer."""

    def __init__(self, source: str = "fasta", files: list[str] | str | None = None, seq_len: int = 1024,
                 batch_size: int = 8, tokenizer=None, seed: int = 0,
                 val_batches: int | None = 8, num_workers: int = 0, synthetic_sequences: int = 2000,
                 synthetic_length: int = 1000, hub_name: str = DEFAULT_HUB_CORPUS, hub_sequences: int = 20000,
                 val_every: int = 20):
        if source not in ("fasta", "synthetic", "hub"):
            raise ValueError(f"data.source must be fasta, synthetic or hub, got {source!r}")
        self.source, self.val_every = source, val_every
        if source == "fasta":
            names = [files] if isinstance(files, (str, os.PathLike)) else list(files or [])
            self.files = [resolve_path(f) for f in names] or [default_data_dir() / DEFAULT_CORPUS]
            missing = [str(f) for f in self.files if not f.is_file()]
            if missing:
                raise DataUnavailableError(
                    f"DNA corpus {', '.join(missing)} is missing: run python scripts/prepare_dna_data.py (extracts "
                    f"D. melanogaster sequences from Debian's r-bioc-biostrings), give data.files=[a FASTA], or use "
                    f"data.source=synthetic")
        elif source == "hub":
            _hub_or_fail(f"the DNA corpus {hub_name}", "use data.source=fasta (python scripts/prepare_dna_data.py) "
                                                       "or data.source=synthetic")
        super().__init__(seq_len=seq_len, batch_size=batch_size, tokenizer=tokenizer, seed=seed,
                         val_batches=val_batches, num_workers=num_workers)
        self.synthetic_sequences, self.synthetic_length = synthetic_sequences, synthetic_length
        self.hub_name, self.hub_sequences = hub_name, hub_sequences

    def sequences(self) -> tuple[list[str], list[str]]:
        """(training, validation) sequences of the source."""
        if self.source == "synthetic":
            def draw(split: int, n: int) -> list[str]:
                return [random_sequence(np.random.default_rng([self.seed, 10 + split, i]), self.synthetic_length)
                        if i % 2 else planted_motif_sample(self.seed, 10 + split, i, self.synthetic_length)[0]
                        for i in range(n)]
            return draw(TRAIN, self.synthetic_sequences), draw(VALIDATION, max(1, self.synthetic_sequences // 10))
        if self.source == "hub":
            from datasets import load_dataset

            stream = load_dataset(self.hub_name, split="train", streaming=True)
            records = [row["sequence"].upper() for _, row in zip(range(self.hub_sequences), stream)]
        else:
            records = [seq for path in self.files for _, seq in read_fasta(path)]
        train = [s for i, s in enumerate(records) if i % self.val_every]
        val = [s for i, s in enumerate(records) if i % self.val_every == 0]
        return train, val

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, val = self.sequences()
        self.train_set, self.val_set = self._windows(train, "train"), self._windows(val, "validation")

    def _encode(self, sequence: str) -> np.ndarray | list[int]:
        if self.tokenizer_config.get("kind") == "dna":
            return encode_dna(sequence)  # the same ids by table lookup: whole genomes in seconds
        return self.tokenizer.backend_tokenizer.encode(sequence, add_special_tokens=False).ids

    def _windows(self, sequences: list[str], split: str) -> PackedWindows:
        ids = pack_documents([self._encode(s) for s in sequences], self.tokenizer.eos_token_id,
                             dtype=token_dtype(len(self.tokenizer)))
        windows = PackedWindows(ids, self.seq_len)
        if len(windows) == 0:
            raise ValueError(f"the {split} DNA corpus has {len(ids)} tokens, fewer than seq_len={self.seq_len}")
        return windows


# ------------------------------------------------------------------------------------------ classification
class LabelledSequences(Dataset):
    """(sequence, label) pairs, tokenised on access: dict(input_ids=LongTensor[n], label=int)."""

    def __init__(self, sequences: list[str], labels: list[int], tokenizer, max_len: int):
        if len(sequences) != len(labels):
            raise ValueError(f"{len(sequences)} sequences but {len(labels)} labels")
        self.sequences, self.labels, self.tokenizer, self.max_len = sequences, labels, tokenizer, max_len

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict:
        ids = self.tokenizer.backend_tokenizer.encode(self.sequences[index], add_special_tokens=False).ids
        return {"input_ids": torch.tensor(ids[: self.max_len], dtype=torch.long), "label": int(self.labels[index])}


def pad_batch(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence of the batch: input_ids [B, T], lengths [B], labels [B]."""
    lengths = torch.tensor([len(item["input_ids"]) for item in items], dtype=torch.long)
    if int(lengths.min()) < 1:
        raise ValueError("an empty sequence cannot be classified")
    ids = torch.full((len(items), int(lengths.max())), pad_id, dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : len(item["input_ids"])] = item["input_ids"]
    return {"input_ids": ids, "lengths": lengths, "labels": torch.tensor([item["label"] for item in items])}


def read_benchmark_dir(root: str | os.PathLike, split: str) -> tuple[list[str], list[int], list[str]]:
    """(sequences, labels, class names) of ``root/split/<class>/*.txt`` (the genomic-benchmarks layout)."""
    base = Path(root) / split
    if not base.is_dir():
        raise DataUnavailableError(f"{base} is missing: a GenomicBenchmarks directory holds train/ and test/ with "
                                   f"one folder of .txt sequences per class")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    sequences, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((base / name).glob("*.txt")):
            sequences.append(path.read_text().strip())
            labels.append(label)
    return sequences, labels, classes


class GenomicsDataModule(SplitDataModule):
    """Sequence classification batches (see the module docstring); ``net_inputs`` hands the classifier the
    vocabulary size and the number of classes."""

    def __init__(self, task: str = "planted_motifs", source: str = "synthetic", root: str | None = None,
                 tokenizer=None, batch_size: int = 32, max_len: int = 1024, val_fraction: float = 0.1,
                 seed: int = 0, num_workers: int = 0, num_classes: int = 2, length: int = 200,
                 train_samples: int = 2000, test_samples: int = 500):
        super().__init__()
        from titans.data.base import tokenizer_from_config

        if source not in ("hub", "package", "local", "synthetic"):
            raise ValueError(f"data.source must be hub, package, local or synthetic, got {source!r}")
        if source == "synthetic" and task != "planted_motifs":
            raise ValueError(f"data.source=synthetic generates the planted_motifs task, not {task!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"data.val_fraction must lie in (0, 1), got {val_fraction}")
        self.task, self.source, self.root = task, source, root
        self.tokenizer, self.tokenizer_config = tokenizer_from_config(
            tokenizer if tokenizer is not None else {"kind": "dna"})
        self.batch_size, self.max_len, self.val_fraction = batch_size, max_len, val_fraction
        self.seed, self.num_workers = seed, num_workers
        self.synthetic = dict(num_classes=num_classes, length=length, train=train_samples, test=test_samples)
        self.num_classes = num_classes if source == "synthetic" else GENOMIC_BENCHMARKS.get(task)
        if source == "hub":
            _hub_or_fail(f"GenomicBenchmarks {task} ({HUB_TEMPLATE.format(task=task)})",
                         "use data.source=local data.root=DIR (a genomic-benchmarks download) or the offline "
                         "experiment=genomics_planted_motifs")
        self.splits: dict[str, LabelledSequences] = {}

    @property
    def net_inputs(self) -> dict[str, int]:
        if self.num_classes is None:  # a benchmark task outside Table 4: count its classes
            self.setup()
        return {"vocab_size": len(self.tokenizer), "num_classes": int(self.num_classes)}

    def model_kwargs(self, model_cfg=None) -> dict:
        """What this data decides about the model (keyword arguments of ``cfg.model``): the vocabulary and the
        number of classes of the network, and the tokenizer's config (stored in checkpoints)."""
        return {"net": self.net_inputs, "tokenizer": dict(self.tokenizer_config)}

    def _load(self) -> dict[str, tuple[list[str], list[int]]]:
        if self.source == "synthetic":
            s = self.synthetic
            def draw(split, n):
                pairs = [planted_motif_sample(self.seed, split, i, s["length"], s["num_classes"]) for i in range(n)]
                return [p[0] for p in pairs], [p[1] for p in pairs]
            return {"train": draw(TRAIN, s["train"]), "test": draw(TEST, s["test"])}
        if self.source == "hub":
            from datasets import load_dataset

            data = load_dataset(HUB_TEMPLATE.format(task=self.task))
            return {split: (list(data[split]["seq"]), [int(x) for x in data[split]["label"]])
                    for split in ("train", "test")}
        if self.source == "package":
            try:
                from genomic_benchmarks.loc2seq import download_dataset
            except ImportError:
                raise DataUnavailableError("data.source=package needs the genomic-benchmarks package: pip install "
                                           "genomic-benchmarks (or use data.source=hub / local)") from None
            root = download_dataset(self.task)
        else:
            root = resolve_path(self.root) if self.root else Path.home() / ".genomic_benchmarks" / self.task
        out = {}
        for split in ("train", "test"):
            sequences, labels, classes = read_benchmark_dir(root, split)
            out[split] = (sequences, labels)
        self.num_classes = self.num_classes or len(classes)
        return out

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        data = self._load()
        sequences, labels = data["train"]
        order = np.random.default_rng(self.seed).permutation(len(sequences))
        n_val = max(1, int(round(self.val_fraction * len(sequences))))
        val, train = order[:n_val], order[n_val:]

        def subset(idx):
            return LabelledSequences([sequences[i] for i in idx], [labels[i] for i in idx], self.tokenizer,
                                     self.max_len)
        self.splits = {"train": subset(train), "val": subset(val),
                       "test": LabelledSequences(*data["test"], self.tokenizer, self.max_len)}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        pad = self.tokenizer.pad_token_id
        return DataLoader(self.splits[split], batch_size=self.batch_size, shuffle=shuffle, drop_last=False,
                          generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
                          collate_fn=functools.partial(pad_batch, pad_id=pad), num_workers=self.num_workers)
