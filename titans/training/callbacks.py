"""Callbacks of our own (Lightning's cover the rest)."""

from __future__ import annotations

import lightning as L


class StopAtStep(L.Callback):
    """Stop cleanly after optimizer step ``step`` while keeping ``max_steps`` (and so the LR schedule) intact.

    Useful for jobs split across time-limited allocations: ``+callbacks.stop.step=1000``, then ``ckpt_path=last``.
    """

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True
