"""CPU threads for a run, chosen before torch starts (its OpenMP pool reads the environment once).

On a shared machine torch's default (one thread per core, OpenMP threads spinning while they wait) collapses:
with two other busy processes on 2 cores the default run fell from 1.45K to 17-30 tokens/s, because each
step waits for a spinning thread that has no core. So, unless the user set ``OMP_NUM_THREADS``:

- threads = the cores left over by the other processes (cores - 1-minute load average, rounded, at least 1);
- when other processes are busy and we still use several threads, ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads
  sleep instead of spinning); on an idle machine the policy is left alone (spinning is faster there).

This module imports nothing heavy: ``train.py`` and ``eval.py`` call :func:`configure_cpu_threads` first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    wait_policy: str | None  # None: OpenMP's default
    reason: str

    def describe(self) -> str:
        policy = self.wait_policy or "default"
        return f"[titans] CPU threads: {self.threads} (OMP_WAIT_POLICY {policy}; {self.reason})"


def choose_cpu_threads(cores: int, load: float | None, env: Mapping[str, str]) -> ThreadChoice:
    """The thread count and OpenMP wait policy for ``cores`` CPUs with ``load`` (1-minute load average before the
    run starts, None when unknown); ``OMP_NUM_THREADS`` / ``OMP_WAIT_POLICY`` in ``env`` always win."""
    cores = max(1, int(cores))
    user_policy = env.get("OMP_WAIT_POLICY") or None
    if env.get("OMP_NUM_THREADS"):
        return ThreadChoice(int(env["OMP_NUM_THREADS"]), user_policy, "set by OMP_NUM_THREADS")
    if load is None:
        return ThreadChoice(cores, user_policy, f"{cores} cores, load unknown")
    others = max(0.0, float(load))
    threads = max(1, min(cores, int(cores - others + 0.5)))
    busy = others >= 0.5
    policy = user_policy or ("PASSIVE" if busy and threads > 1 else None)
    return ThreadChoice(threads, policy, f"{cores} cores, load {others:.1f} from other processes")


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def configure_cpu_threads(verbose: bool = True) -> ThreadChoice:
    """Choose and export OMP_NUM_THREADS (and OMP_WAIT_POLICY when needed); call before importing torch."""
    choice = choose_cpu_threads(_available_cores(), _load_average(), os.environ)
    os.environ["OMP_NUM_THREADS"] = str(choice.threads)
    if choice.wait_policy:
        os.environ["OMP_WAIT_POLICY"] = choice.wait_policy
    if verbose:  # a diagnostic: stderr, so that stdout stays machine-readable (-sc install=bash, --cfg job)
        print(choice.describe(), file=sys.stderr, flush=True)
    return choice
