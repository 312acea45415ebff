"""What the data modules share: where a resumed run's training stream continues, what the data tells the model, the
tokenizer from a config, and the language-model loaders.

``batch_size`` is the per-device batch of one forward pass (a micro-batch: gradient accumulation, derived by train()
from ``global_batch_tokens``, makes up the optimizer step).
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
from torch.utils.data import DataLoader, Dataset, Subset
from transformers import PreTrainedTokenizerFast

from titans.data.sampler import ResumableSampler
from titans.data.tokenizers import build_tokenizer
from titans.data.vocab import net_vocab_kwargs


def tokenizer_from_config(tokenizer) -> tuple[PreTrainedTokenizerFast, dict]:
    """(tokenizer, its config dict) from None (the bpe default), a config mapping, or a built tokenizer."""
    if isinstance(tokenizer, PreTrainedTokenizerFast):
        return tokenizer, dict(getattr(tokenizer, "titans_config", {"name_or_path": tokenizer.name_or_path}))
    if tokenizer is not None and not isinstance(tokenizer, Mapping):
        raise TypeError(f"tokenizer must be a config mapping (kind=..., ...) or a PreTrainedTokenizerFast, "
                        f"got {type(tokenizer).__name__}")
    config = {k: v for k, v in dict(tokenizer or {}).items() if not str(k).startswith("_")}
    tok = build_tokenizer(**config)
    return tok, dict(tok.titans_config)


class SplitDataModule(L.LightningDataModule):
    """A data module with train/validation/test splits, each served by ``self._loader(split, shuffle)``
    (shuffled for training only)."""

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class TokenDataModule(L.LightningDataModule):
    """A data module of token sequences. Subclasses set ``seq_len``, ``batch_size``, ``tokenizer`` (None for
    synthetic vocabularies), ``tokenizer_config`` and the ``vocab_size`` property."""

    seq_len: int
    batch_size: int
    tokenizer: PreTrainedTokenizerFast | None = None
    tokenizer_config: dict | None = None

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def model_kwargs(self, model_cfg: Mapping | None = None) -> dict:
        """What this data decides about the model, as keyword arguments of the LightningModule config (``cfg.model``;
        train() passes them to its instantiation): the network's vocabulary, unless ``model_cfg`` sets
        ``net.vocab_size`` (then it must hold every id of this data), and the tokenizer's config, stored in
        checkpoints so that they can be evaluated on their own."""
        kwargs: dict = {"net": net_vocab_kwargs(model_cfg, self.vocab_size, self.tokenizer)}
        if self.tokenizer_config is not None:
            kwargs["tokenizer"] = dict(self.tokenizer_config)
        return kwargs

    def check_token_budget(self, train_tokens: int) -> float | None:
        """train() calls this before fitting with the tokens the run will read (max_steps x tokens per step). A module
        that knows the size of its training data logs the passes and warns about, or refuses, repetition
        (FineWebEduDataModule); returns the passes, None where unknown (here)."""
        return None

    # ------------------------------------------------------------------------------ distribution
    def _rank_and_world_size(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def samples_per_step(self) -> int:
        """Training samples per optimizer step over all devices: accumulate_grad_batches * batch_size * world_size."""
        trainer = self.trainer
        if trainer is None:
            return self.batch_size
        return trainer.accumulate_grad_batches * self.batch_size * trainer.world_size

    def train_start_index(self) -> int:
        """Global sample index of the next training sample: 0 for a fresh run, and after a restore
        global_step * samples_per_step()."""
        trainer = self.trainer
        return 0 if trainer is None else trainer.global_step * self.samples_per_step()


class PackedLMDataModule(TokenDataModule):
    """Subclasses fill self.train_set and self.val_set (datasets of dict(input_ids=LongTensor[seq_len])) in setup()."""

    def __init__(self, seq_len: int, batch_size: int, tokenizer=None, seed: int = 0,
                 val_batches: int | None = None, num_workers: int = 0, pin_memory: bool = False):
        super().__init__()
        if seq_len <= 0 or batch_size <= 0:
            raise ValueError(f"seq_len and batch_size must be positive (got {seq_len}, {batch_size})")
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.val_batches, self.num_workers, self.pin_memory = val_batches, num_workers, pin_memory
        self.tokenizer, self.tokenizer_config = tokenizer_from_config(tokenizer)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        # None: torch's default collation (equal-length windows); subclasses with variable-length items set one
        self.collate_fn = None

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    # ------------------------------------------------------------------------------ loaders
    def _require_setup(self):
        if self.train_set is None or self.val_set is None:
            self.setup("fit")

    def train_dataloader(self, start_index: int | None = None) -> DataLoader:
        """Infinite loader (no __len__: train with max_steps); batches dict(input_ids=LongTensor[B, seq_len])."""
        self._require_setup()
        rank, world_size = self._rank_and_world_size()
        sampler = ResumableSampler(
            len(self.train_set), seed=self.seed,
            start_index=self.train_start_index() if start_index is None else start_index,
            rank=rank, world_size=world_size,
        )
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0, collate_fn=self.collate_fn)

    def val_dataloader(self) -> DataLoader:
        """The same windows every time: the first val_batches * batch_size windows (all if None), split between
        ranks (rank r takes windows r, r + world_size, ...)."""
        self._require_setup()
        rank, world_size = self._rank_and_world_size()
        count = len(self.val_set)
        if self.val_batches is not None:
            count = min(count, self.val_batches * self.batch_size * world_size)
        indices = list(range(rank, count, world_size))
        return DataLoader(Subset(self.val_set, indices), batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, pin_memory=self.pin_memory, collate_fn=self.collate_fn)
