"""Callbacks of our own (Lightning's cover the rest)."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import redirect_stdout

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

log = logging.getLogger(__name__)


class StopAtStep(L.Callback):
    """Stop cleanly after optimizer step ``step`` while keeping ``max_steps`` (and so the LR schedule) intact.

    Useful for jobs split across time-limited allocations: ``+callbacks.stop.step=1000``, then ``ckpt_path=last``.
    """

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class CPUTimeLimit(L.Callback):
    """Stop after the optimizer step at which this process has used ``minutes`` of CPU time (user + system, all
    its threads) since fitting started.

    A budget that means the same on an idle machine and on one whose cores other jobs share, where Lightning's
    ``trainer.max_time`` (wall-clock) gives a run fewer steps the busier the machine is. Like ``max_time``, the
    run then validates the model it ends with. A resumed run counts from its own start.
    """

    def __init__(self, minutes: float) -> None:
        if not float(minutes) > 0:
            raise ValueError(f"CPUTimeLimit: minutes must be > 0, got {minutes}")
        self.seconds = 60.0 * float(minutes)
        self._started: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.process_time()

    def used(self) -> float:
        return 0.0 if self._started is None else time.process_time() - self._started

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if self.used() >= self.seconds:
            trainer.should_stop = True


class InterruptCheckpoint(L.Callback):
    """Write ``<dirpath>/<filename>.ckpt`` when fitting is interrupted (an exception, Ctrl-C, SIGTERM), so
    ``ckpt_path=last`` loses nothing since the last periodic save; a run that finishes removes it.

    Lightning's ``OnExceptionCheckpoint`` does the same, but its presence also makes every ``fit(ckpt_path=None)``
    look for a "last" checkpoint to resume from (and warn twice on each fresh run); resuming is decided by
    ``ckpt_path`` alone here.
    """

    def __init__(self, dirpath: str, filename: str = "on_exception") -> None:
        import os

        self.ckpt_path = os.path.join(str(dirpath), f"{filename}.ckpt")
        #: the file written by the latest interrupt (None before one, or when that save failed)
        self.saved_path: str | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        from titans.errors import CheckpointWriteError

        self.saved_path = None
        if isinstance(exception, CheckpointWriteError):  # the disk is full: another save would fail the same way
            return
        _as_if_saved_after_the_last_completed_batch(trainer)
        try:
            trainer.save_checkpoint(self.ckpt_path)
        except Exception as err:  # noqa: BLE001 - the original exception is what the run reports
            log.warning("could not write the interrupt checkpoint %s: %s", self.ckpt_path, err)
            return
        self.saved_path = self.ckpt_path

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from lightning.pytorch.trainer.states import TrainerStatus

        if stage == "fit" and trainer.state.status == TrainerStatus.FINISHED:
            trainer.strategy.remove_checkpoint(self.ckpt_path)


class RunConfigInCheckpoint(L.Callback):
    """Write the run's resolved config into every checkpoint (``checkpoint["titans_run_config"]``, plain containers):
    resuming compares it with the new run's (titans.training.checkpoint.check_resume_checkpoint) and
    ``ckpt_path=last`` takes only checkpoints of the same run. train() adds it to every run."""

    def __init__(self, config: dict) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        from titans.models.checkpoint_io import RUN_CONFIG

        checkpoint[RUN_CONFIG] = self.config


def _as_if_saved_after_the_last_completed_batch(trainer: L.Trainer) -> None:
    """Make the epoch loop's batch counters those of a periodic save at the end of the last completed batch.

    An interrupt lands anywhere inside a batch (the counters ready/started/processed run ahead of completed);
    Lightning restores such a state with its loop's schedule off by one (a run interrupted at step 7 validated at
    8/11 instead of 9/12). A periodic checkpoint, written in ``on_train_batch_end``, has every counter one ahead of
    ``completed``, which Lightning restores exactly; the interrupted batch's work is lost either way.
    """
    progress = trainer.fit_loop.epoch_loop.batch_progress
    for tracker in (progress.total, progress.current):
        done = tracker.completed
        if done > 0:
            tracker.ready = tracker.started = tracker.processed = done
            tracker.completed = done - 1


class StderrProgressBar(TQDMProgressBar):
    """Lightning's tqdm progress bars on stderr (Lightning writes them to stdout), so that stdout holds the run's
    results only. Lightning passes ``file=sys.stdout`` when it builds each bar: built with stdout pointing at
    stderr, the bar keeps stderr."""

    def init_sanity_tqdm(self):
        with redirect_stdout(sys.stderr):
            return super().init_sanity_tqdm()

    def init_train_tqdm(self):
        with redirect_stdout(sys.stderr):
            return super().init_train_tqdm()

    def init_validation_tqdm(self):
        with redirect_stdout(sys.stderr):
            return super().init_validation_tqdm()

    def init_test_tqdm(self):
        with redirect_stdout(sys.stderr):
            return super().init_test_tqdm()

    def init_predict_tqdm(self):
        with redirect_stdout(sys.stderr):
            return super().init_predict_tqdm()
