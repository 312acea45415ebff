"""Watches the outer gradient norm before clipping: by parameter group, and against its own running median.

A memory whose inner loop diverges (or whose conditioning degrades with length) shows first as a gradient norm
that jumps by orders of magnitude while the loss still looks fine, because clipping at 1.0 hides it in the
update. :class:`GradNormMonitor` keeps the last ``window`` pre-clip norms, total and per group
(``titans.models.param_groups``), and reports a spike when the total exceeds ``spike_factor`` times the median of
the steps before it, naming the group that grew most against its own median.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass


@dataclass
class Spike:
    step: int
    norm: float
    median: float
    group: str
    group_norm: float
    group_median: float

    def message(self) -> str:
        return (f"[titans] gradient spike at step {self.step}: pre-clip norm {self.norm:.3g} is "
                f"{self.norm / self.median:.0f}x its running median {self.median:.3g}; it comes from "
                f"'{self.group}' ({self.group_norm:.3g}, median {self.group_median:.3g}). See docs/design.md, "
                f"'Conditioning of the memory'; scripts/memory_grad_norm.py measures a checkpoint by group.")


class GradNormMonitor:
    """Running medians of the total and per-group gradient norms; ``update`` returns a :class:`Spike` or None.

    ``max_ratio`` is the largest norm / running-median ratio seen so far (1.0 until ``min_history`` steps)."""

    def __init__(self, window: int = 50, spike_factor: float = 100.0, min_history: int = 10) -> None:
        self.window, self.spike_factor, self.min_history = window, spike_factor, min_history
        self.total: deque[float] = deque(maxlen=window)
        self.groups: dict[str, deque[float]] = {}
        self.max_ratio = 1.0

    def update(self, step: int, total: float, groups: dict[str, float]) -> Spike | None:
        spike = None
        if len(self.total) >= self.min_history:
            median = statistics.median(self.total)
            ratio = total / median if median > 0 else float("inf")
            self.max_ratio = max(self.max_ratio, ratio)
            if ratio > self.spike_factor:
                spike = self._spike(step, total, median, groups)
        self.total.append(total)
        for name, value in groups.items():
            self.groups.setdefault(name, deque(maxlen=self.window)).append(value)
        return spike

    def state_dict(self) -> dict:
        """What a checkpoint keeps, so that a resumed run's medians and ``max_ratio`` continue where they were."""
        return {"total": list(self.total), "groups": {k: list(v) for k, v in self.groups.items()},
                "max_ratio": self.max_ratio}

    def load_state_dict(self, state: dict) -> None:
        self.total = deque(state["total"], maxlen=self.window)
        self.groups = {k: deque(v, maxlen=self.window) for k, v in state["groups"].items()}
        self.max_ratio = float(state["max_ratio"])

    def _spike(self, step: int, total: float, median: float, groups: dict[str, float]) -> Spike:
        def growth(name: str) -> float:
            history = self.groups.get(name)
            base = statistics.median(history) if history else 0.0
            return groups[name] / base if base > 0 else float("inf")

        group = max(groups, key=growth)
        history = self.groups.get(group)
        return Spike(step, total, median, group, groups[group], statistics.median(history) if history else 0.0)


__all__ = ["GradNormMonitor", "Spike"]
