"""Split the scoring of a continuation into model inputs no longer than the model's window.

A causal LM trained at length L is scored on longer texts with rolling windows (as lm-eval does
for loglikelihood_rolling): each window predicts up to L new target tokens, conditioned on as many
immediately preceding tokens as fit in L inputs. With one window this is the plain forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoringWindow:
    """One model input; its last ``n_scored`` positions predict the next ``n_scored`` tokens."""

    input_ids: list[int]
    targets: list[int]

    @property
    def n_scored(self) -> int:
        return len(self.targets)


def rolling_windows(context: list[int], continuation: list[int], max_length: int) -> list[ScoringWindow]:
    """Windows that together score every token of ``continuation`` exactly once.

    Target token i (an index into ``context + continuation``) is predicted from inputs
    ``tokens[lo:i]`` with ``i - lo <= max_length``. ``context`` must hold at least one token
    (lm-eval supplies the BOS/EOS prefix when the context is empty).
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if not context:
        raise ValueError("context must hold at least one token (use the BOS/EOS prefix for empty contexts)")
    tokens = list(context) + list(continuation)
    windows = []
    start = len(context)
    while start < len(tokens):
        end = min(len(tokens), start + max_length)
        lo = max(0, end - 1 - max_length)
        windows.append(ScoringWindow(input_ids=tokens[lo : end - 1], targets=tokens[start:end]))
        start = end
    return windows
