"""How many passes a run makes over its training data, and how many tokens FineWeb-Edu's public subsets hold.

A run reads ``train_tokens = trainer.max_steps x tokens per optimizer step``; its passes over the data are
``train_tokens / (the unique training tokens its source holds)``. The paper trains on unique tokens, so more than one
pass is a warning (or an error under ``data.allow_repeat=false``) that names a source large enough.

Where the size of a source comes from (nothing here needs the hub):

- prepared shards (``scripts/prepare_lm_data.py``): the exact token count of their train split, from ``meta.json``;
- FineWeb-Edu streamed from the hub: ``FINEWEB_EDU_SUBSETS``, the sizes the dataset card of
  ``HuggingFaceFW/fineweb-edu`` publishes for its configs ("a subset randomly sampled from the whole dataset of around
  10B/100B/350B gpt2 tokens"; the whole ``default`` config, about 1.3T tokens). These are GPT-2 tokens. We count one
  Llama-2 token per GPT-2 token (``LLAMA2_TOKENS_PER_GPT2_TOKEN``), an assumption not measured here (no GPT-2
  tokenizer offline): Llama-2's vocabulary (32K) is smaller than GPT-2's (50K) and splits numbers into digits, so the
  same English text should take at least as many Llama-2 tokens, which makes the count a lower bound of what a subset
  holds (the passes an upper bound). The held-out validation documents (``titans.data.split``) are taken off. For
  the exact count, prepare shards;
- any other source (local files): unknown; the run says so and checks nothing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

#: the configs of HuggingFaceFW/fineweb-edu and their size in GPT-2 tokens, as its dataset card publishes them
FINEWEB_EDU_SUBSETS: dict[str, float] = {
    "sample-10BT": 10e9,
    "sample-100BT": 100e9,
    "sample-350BT": 350e9,
    "default": 1.3e12,
}
#: Llama-2 tokens counted per GPT-2 token of the card (assumed; see the module docstring)
LLAMA2_TOKENS_PER_GPT2_TOKEN = 1.0


def format_tokens(n: float) -> str:
    """15000330240 -> '15.0B', 2.5e6 -> '2.5M', 812 -> '812'."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{1 if n / scale < 100 else 0}f}{unit}"
    return f"{n:.0f}"


def subset_train_tokens(dataset_config: str, val_fraction: float = 0.0) -> float:
    """The training tokens (Llama-2, a lower bound) a FineWeb-Edu config holds once its held-out documents are off."""
    if dataset_config not in FINEWEB_EDU_SUBSETS:
        raise ValueError(f"unknown FineWeb-Edu config {dataset_config!r}: use one of {', '.join(FINEWEB_EDU_SUBSETS)}")
    return FINEWEB_EDU_SUBSETS[dataset_config] * LLAMA2_TOKENS_PER_GPT2_TOKEN * (1.0 - val_fraction)


def smallest_subset_holding(train_tokens: float, val_fraction: float = 0.0) -> str | None:
    """The smallest FineWeb-Edu config that holds ``train_tokens`` unique training tokens (None: none does)."""
    for name in sorted(FINEWEB_EDU_SUBSETS, key=FINEWEB_EDU_SUBSETS.get):
        if subset_train_tokens(name, val_fraction) >= train_tokens:
            return name
    return None


@dataclass(frozen=True)
class TokenBudget:
    """What a run reads against what its source holds.

    ``available_tokens`` is None when the source's size is unknown; ``source`` says what was counted and how,
    ``remedy`` what gives enough unique tokens (it names the larger subset)."""

    train_tokens: int
    available_tokens: float | None
    source: str
    remedy: str = ""

    @property
    def passes(self) -> float | None:
        if self.available_tokens is None:
            return None
        return math.inf if self.available_tokens <= 0 else self.train_tokens / self.available_tokens

    def describe(self) -> str:
        if self.passes is None:
            return f"{format_tokens(self.train_tokens)} training tokens from {self.source}, whose size is unknown"
        return (f"{format_tokens(self.train_tokens)} training tokens ({self.train_tokens:,}) are {self.passes:.2f} "
                f"pass(es) over {self.source}")


def check_budget(budget: TokenBudget, allow_repeat: bool, log: logging.Logger) -> float | None:
    """Log the passes; more than one is a warning naming the remedy, or a ValueError when ``allow_repeat`` is false.
    Returns the passes (None: unknown)."""
    passes = budget.passes
    if passes is None:
        log.info("data: %s: passes not checked (prepare shards with scripts/prepare_lm_data.py for an exact count)",
                 budget.describe())
        return None
    if passes <= 1:
        log.info("data: %s", budget.describe())
        return passes
    message = f"{budget.describe()}: the run repeats its training data; {budget.remedy}"
    if not allow_repeat:
        raise ValueError(f"{message}, or set data.allow_repeat=true to train on repeated data")
    log.warning("data: %s (data.allow_repeat=false makes this an error)", message)
    return passes


__all__ = ["FINEWEB_EDU_SUBSETS", "LLAMA2_TOKENS_PER_GPT2_TOKEN", "TokenBudget", "check_budget", "format_tokens",
           "smallest_subset_holding", "subset_train_tokens"]
