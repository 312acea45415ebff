"""BabilongDataModule: question-answer fine-tuning data for the paper's BABILong fine-tuned setting.

Each item is one BABILong sample formatted exactly as the evaluation suite ``babilong`` formats it
(titans.tasks.babilong.PROMPT, "{context}\\nQuestion: {question}\\nAnswer:") and tokenized as evaluation
tokenizes it (the prompt alone, no special tokens), followed by the answer:

    input_ids = tokens(prompt) + tokens(" " + answer) [+ EOS]
    labels    = IGNORE_INDEX on the prompt,  tokens(" " + answer) [+ EOS]

Labels are aligned with input_ids (Hugging Face convention: TitansForCausalLM shifts them), so the loss
is the cross-entropy of the answer tokens (and of the EOS that ends the answer, ``add_eos``) only.

Batches: dict(input_ids=LongTensor[B, T], labels=LongTensor[B, T]) with T the longest item of the batch
(rounded up to ``pad_to_multiple_of``). Items are right-padded with the pad (or EOS) token and IGNORE_INDEX:
in a causal model no real position sees the padding, so no attention mask is needed (the models support
none). Samples are not packed together: the memory is not reset inside a sequence, so a packed sample
would start from the previous sample's memory, while evaluation gives every sample a fresh one.
A sample longer than ``seq_len`` loses the start of its prompt (the question and answer are at the end).

Sources:
- ``hub``: RMT-team/babilong-train-5k-samples (5,000 samples per task and length split; one config per
  length, one split per task). Without hub access the module fails at construction with one line naming
  the offline source. The first ``val_samples`` rows of each (task, length) are held out for validation.
- ``offline``: bAbI qa1-qa3 stories from the evaluation's generator (titans.tasks.babilong), hidden in the
  bundled corpus at the given token lengths, generated on demand from ``generator_seed``. Validation
  samples use other generator indices than training samples. The evaluation suite ``babilong_offline``
  uses generator seed 0; keep ``generator_seed`` different so that no evaluation story is trained on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from titans.data.base import PackedLMDataModule
from titans.errors import DataUnavailableError, first_line
from titans.hub import require_hub
from titans.models.loss import IGNORE_INDEX
from titans.tasks.babilong import OFFLINE_TASKS, length_in_tokens, make_babilong_sample, sample_from_hub_row
from titans.tasks.haystack import Haystack, load_haystack_text
from titans.tasks.qa import qa_training_example

log = logging.getLogger(__name__)

HUB_TRAIN_DATASET = "RMT-team/babilong-train-5k-samples"
HUB_TRAIN_TASKS = tuple(f"qa{i}" for i in range(1, 11))
HUB_TRAIN_LENGTHS = ("0k", "1k", "2k", "4k", "8k", "16k", "32k", "64k")
SOURCES = ("hub", "offline")
EVAL_GENERATOR_SEED = 0  # configs/suite/babilong_offline.yaml


class PadCollator:
    """Right-pads items to the longest of the batch: input_ids with ``pad_id``, labels with IGNORE_INDEX."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None):
        self.pad_id, self.pad_to_multiple_of = int(pad_id), pad_to_multiple_of

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in items)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, :n] = item["input_ids"]
            labels[row, :n] = item["labels"]
        return {"input_ids": input_ids, "labels": labels}


class QADataset(Dataset):
    """Tokenized (prompt, answer) items of a sample source (``len()`` and ``sample(i)`` -> BabilongSample)."""

    def __init__(self, source, tokenizer, max_len: int, add_eos: bool = True, name: str = "train"):
        self.source, self.tokenizer, self.max_len, self.add_eos, self.name = source, tokenizer, max_len, add_eos, name
        self._warned = False

    def __len__(self) -> int:
        return len(self.source)

    def sample(self, index: int):
        return self.source.sample(index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.sample(index)
        example = qa_training_example(sample.prompt, sample.answer, self.tokenizer, add_eos=self.add_eos)
        ids, labels = example["input_ids"], example["labels"]
        excess = len(ids) - self.max_len
        if excess > 0:
            answer_len = sum(1 for label in labels if label != IGNORE_INDEX)
            if answer_len >= self.max_len:
                raise ValueError(f"the answer of {self.name} sample {index} takes {answer_len} tokens, "
                                 f"not fewer than seq_len={self.max_len}")
            ids, labels = ids[excess:], labels[excess:]
            if not self._warned:
                self._warned = True
                log.warning("%s sample %d (%s, %s) has %d tokens, more than seq_len=%d: its first %d prompt tokens "
                            "are dropped (raise data.seq_len to keep whole samples; further cuts are not reported)",
                            self.name, index, sample.task, sample.context_length, len(ids) + excess, self.max_len,
                            excess)
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long)}


def _interleave(cells: list, counts: list[int], start: int) -> list[tuple[int, int]]:
    """(cell, row) pairs from row ``start`` of every cell, round-robin over cells: any prefix covers all cells."""
    pairs = []
    for offset in range(max(counts, default=0)):
        for cell, count in enumerate(counts):
            if offset < count:
                pairs.append((cell, start + offset))
    return pairs


class GeneratedSamples:
    """Offline bAbI stories (qa1-qa3) in bundled text: item i is generator index ``start + i // cells`` of cell
    ``i % cells``, a (task, length) pair; generated when asked for, deterministic in (task, length, index, seed).
    A story longer than its cell's length on its own (qa3 stories reach about 300 BPE tokens) is used bare, with
    no background text: the sample is still at least that long."""

    def __init__(self, tasks, lengths, count: int, start: int, seed: int, tokenizer, haystack):
        self.cells = [(task, int(length)) for task in tasks for length in lengths]
        self.count, self.start, self.seed, self.tokenizer, self.haystack = count, start, seed, tokenizer, haystack
        self._warned = False

    def __len__(self) -> int:
        return self.count * len(self.cells)

    def sample(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        task, length = self.cells[index % len(self.cells)]
        generator_index = self.start + index // len(self.cells)
        sample = make_babilong_sample(task, self.tokenizer, length, generator_index, self.seed,
                                      self.haystack if length > 0 else None, bare_if_too_short=True)
        if sample.n_tokens > length > 0 and not self._warned:
            self._warned = True
            log.warning("a %s story takes %d tokens, more than data.lengths' %d: such stories are used bare, "
                        "without background text (further cases are not reported)", task, sample.n_tokens, length)
        return sample


class HubSamples:
    """Rows of the hub data set: ``tables[(task, length)]`` (datasets.Dataset) at the given (cell, row) pairs."""

    def __init__(self, tables: dict, pairs: list[tuple[int, int]]):
        self.cells = list(tables)
        self.tables, self.pairs = tables, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def sample(self, index: int):
        cell, row = self.pairs[index]
        task, length = self.cells[cell]
        return sample_from_hub_row(self.tables[(task, length)][row], task, length, row)


class BabilongDataModule(PackedLMDataModule):
    """BABILong question answering for fine-tuning; see the module docstring.

    Args:
        source: ``hub`` (RMT-team/babilong-train-5k-samples) or ``offline`` (generated qa1-qa3 stories).
        tasks: bAbI tasks (hub: qa1-qa10, the paper evaluates qa1-qa5; offline: qa1-qa3).
        lengths: hub length splits (0k, 2k, 4k, 8k, 16k, 32k; 1k and 64k for some tasks only) or, offline, context
            lengths in tokens of this tokenizer (0 = the bare story; 2k style works too).
        seq_len: the longest training sequence; longer samples lose the start of their prompt. Offline, every
            length (+1 for EOS) must fit.
        train_samples / val_samples: samples per (task, length); train_samples None = all the rest (hub) or
            1000 (offline). Validation uses the first val_batches * batch_size samples, spread over the cells.
        seed: the sampler's shuffling seed; generator_seed: the offline stories' seed.
        dataset: the hub data set name, or a local copy of its repository.
        add_eos: supervise an EOS after the answer (generation stops there at evaluation).
        pad_to_multiple_of: round each batch's length up to a multiple (e.g. the MAC segment length).
    """

    def __init__(self, source: str = "offline", tasks=("qa1", "qa2", "qa3"), lengths=(0, 512), seq_len: int = 513,
                 batch_size: int = 1, tokenizer=None, seed: int = 0, val_batches: int | None = None,
                 num_workers: int = 0, pin_memory: bool = False,
                 train_samples: int | None = None, val_samples: int = 20, generator_seed: int = 1,
                 haystack_path: str | os.PathLike | None = None, dataset: str = HUB_TRAIN_DATASET,
                 add_eos: bool = True, pad_to_multiple_of: int | None = None):
        if source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
        self.source, self.tasks, self.lengths = source, [str(t) for t in tasks], [str(n) for n in lengths]
        if not self.tasks or not self.lengths:
            raise ValueError("data.tasks and data.lengths must not be empty")
        if val_samples < 0 or (train_samples is not None and train_samples <= 0):
            raise ValueError(f"val_samples must be >= 0 and train_samples positive "
                             f"(got {val_samples}, {train_samples})")
        self.train_samples, self.val_samples = train_samples, int(val_samples)
        self.generator_seed, self.haystack_path, self.dataset = int(generator_seed), haystack_path, str(dataset)
        self.add_eos = add_eos
        if source == "hub":
            self._check_hub_arguments()
        else:
            self._check_offline_arguments(seq_len, add_eos)
        super().__init__(seq_len=seq_len, batch_size=batch_size,
                         tokenizer=tokenizer, seed=seed, val_batches=val_batches, num_workers=num_workers,
                         pin_memory=pin_memory)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        if pad_id is None or (add_eos and self.tokenizer.eos_token_id is None):
            raise ValueError("the tokenizer has no EOS token (needed to pad and to end answers)")
        self.collate_fn = PadCollator(pad_id, pad_to_multiple_of)

    # ------------------------------------------------------------------------------ checks
    def _check_offline_arguments(self, seq_len: int, add_eos: bool) -> None:
        bad = [t for t in self.tasks if t not in OFFLINE_TASKS]
        if bad:
            raise ValueError(f"the offline BABILong generator covers {OFFLINE_TASKS}, not {bad}: "
                             f"qa4/qa5 need data.source=hub (data=babilong)")
        self.lengths = [str(length_in_tokens(n)) for n in self.lengths]
        longest = max(int(n) for n in self.lengths) + int(add_eos)
        if longest > seq_len:
            raise ValueError(f"data.lengths go up to {longest - int(add_eos)} tokens (+{int(add_eos)} for EOS), "
                             f"more than data.seq_len={seq_len}: raise seq_len to {longest} or shorten the lengths")
        if self.generator_seed == EVAL_GENERATOR_SEED:
            log.warning("data.generator_seed=%d is the seed of suite=babilong_offline: training would see the "
                        "evaluation's stories", self.generator_seed)

    def _check_hub_arguments(self) -> None:
        bad_tasks = [t for t in self.tasks if t not in HUB_TRAIN_TASKS]
        bad_lengths = [n for n in self.lengths if n not in HUB_TRAIN_LENGTHS]
        if bad_tasks or bad_lengths:
            raise ValueError(f"{self.dataset} has tasks {HUB_TRAIN_TASKS[0]}-{HUB_TRAIN_TASKS[-1]} and length splits "
                             f"{', '.join(HUB_TRAIN_LENGTHS)}; got tasks {bad_tasks or 'ok'}, "
                             f"lengths {bad_lengths or 'ok'}")
        if not Path(self.dataset).exists():
            require_hub(self._what(), self._offline_alternative())

    def _what(self) -> str:
        return f"BABILong training data ({self.dataset}, {'/'.join(self.tasks)} at {'/'.join(self.lengths)})"

    @staticmethod
    def _offline_alternative() -> str:
        return (f"data=babilong_offline (generated bAbI qa1-qa3 stories in the bundled corpus, e.g. "
                f"experiment=babilong_finetune_tiny_offline), or data.dataset=<a local copy of the "
                f"{HUB_TRAIN_DATASET} repository>")

    # ------------------------------------------------------------------------------ data
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.source == "hub":
            train, val = self._hub_sources()
        else:
            train, val = self._offline_sources()
        self.train_set = QADataset(train, self.tokenizer, self.seq_len, self.add_eos, "train")
        self.val_set = QADataset(val, self.tokenizer, self.seq_len, self.add_eos, "validation")
        if len(self.train_set) == 0:
            raise ValueError("no training samples: lower data.val_samples or raise data.train_samples")
        log.info("BABILong %s: %d training and %d validation samples (%s at %s)", self.source,
                 len(self.train_set), len(self.val_set), "/".join(self.tasks), "/".join(self.lengths))

    def _offline_sources(self):
        needs_text = any(int(n) > 0 for n in self.lengths)
        haystack = Haystack(load_haystack_text(self.haystack_path)) if needs_text else None
        count = 1000 if self.train_samples is None else int(self.train_samples)
        common = dict(tasks=self.tasks, lengths=self.lengths, seed=self.generator_seed, tokenizer=self.tokenizer,
                      haystack=haystack)
        # generator indices: training 0..count-1, validation count..count+val_samples-1 (never the same story)
        return (GeneratedSamples(count=count, start=0, **common),
                GeneratedSamples(count=self.val_samples, start=count, **common))

    def _hub_sources(self):
        try:
            import datasets

            tables = {(task, length): datasets.load_dataset(self.dataset, name=length, split=task)
                      for task in self.tasks for length in self.lengths}
        except (OSError, ConnectionError, ValueError) as err:  # network, unknown config/split, missing files
            raise DataUnavailableError(f"{self._what()} is not available: loading it failed ({first_line(err)}); "
                                       f"use {self._offline_alternative()}") from err
        sizes = [len(table) for table in tables.values()]
        if min(sizes) <= self.val_samples:
            raise ValueError(f"a (task, length) of {self.dataset} has {min(sizes)} rows, not more than "
                             f"val_samples={self.val_samples}")
        train_counts = [n - self.val_samples for n in sizes]
        if self.train_samples is not None:
            train_counts = [min(n, int(self.train_samples)) for n in train_counts]
        val = HubSamples(tables, _interleave(list(tables), [self.val_samples] * len(tables), 0))
        train = HubSamples(tables, _interleave(list(tables), train_counts, self.val_samples))
        return train, val


__all__ = ["BabilongDataModule", "PadCollator", "QADataset", "length_in_tokens",
           "HUB_TRAIN_DATASET", "HUB_TRAIN_TASKS", "HUB_TRAIN_LENGTHS"]
