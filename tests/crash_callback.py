"""A callback that kills a training run at a given step (used by tests through PYTHONPATH)."""

import lightning as L


class CrashAtStep(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args, **kwargs) -> None:
        if trainer.global_step >= self.step:
            raise RuntimeError(f"simulated crash at step {trainer.global_step}")


class DiskFullAtStep(L.Callback):
    """From optimizer step ``step`` on, every checkpoint write stops halfway with "No space left on device": torch.save
    writes the first half of the checkpoint's bytes to the file, then raises (what a full disk does mid-write)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args, **kwargs) -> None:
        import errno
        import io

        import torch

        if trainer.global_step < self.step or getattr(torch.save, "disk_full", False):
            return
        real = torch.save

        def half_then_full(obj, f, *args, **kwargs):
            buffer = io.BytesIO()
            real(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            if hasattr(f, "write"):
                f.write(data[: len(data) // 2])
            else:
                with open(f, "wb") as out:
                    out.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        half_then_full.disk_full = True
        torch.save = half_then_full
