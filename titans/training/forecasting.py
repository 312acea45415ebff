"""LightningModule for long-horizon forecasting: any ``nn.Module`` mapping ``x [B, lookback, C]`` to
``[B, horizon, C]`` (``titans.models.forecasting``), trained on the MSE of the normalised targets.

Metrics (on the z-normalised values, the benchmark's convention): ``val/mse``, ``val/mae``, ``test/mse``,
``test/mae``, each the mean over every window, horizon step and variate of the split (torchmetrics accumulates
sums and counts, so the value does not depend on the batch size or a partial last batch).
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError

from titans.training.optim import build_optimizer_and_schedule

LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}


class LitForecaster(L.LightningModule):
    """Args:
        net: the forecaster (an ``nn.Module``, instantiated by Hydra from ``model.net``).
        optimizer: AdamW settings (``lr``, ``weight_decay``, ``betas``, ``eps``).
        scheduler: ``warmup_steps`` and ``min_lr_ratio`` of the cosine schedule over the run's steps.
        loss: the training loss, ``mse`` (default), ``mae`` or ``huber``; evaluation always reports MSE and MAE.
        tokens_per_step: given by train() to every module; unused here (the schedule counts steps).
    """

    def __init__(self, net: nn.Module, optimizer: dict, scheduler: dict, loss: str = "mse",
                 tokens_per_step: int | None = None):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net = net
        self.loss_fn = LOSSES[loss]
        self.metrics = nn.ModuleDict({f"{split}_{name}": cls() for split in ("val", "test")
                                      for name, cls in (("mse", MeanSquaredError), ("mae", MeanAbsoluteError))})
        #: the global step of the latest completed validation (None before the first)
        self.validated_at_step: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss_fn(self.net(batch["x"]), batch["y"])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.global_step}: "
                                     f"lower model.optimizer.lr or keep trainer.gradient_clip_val")
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def _evaluate(self, split: str, batch: dict[str, torch.Tensor]) -> None:
        prediction = self.net(batch["x"])
        for name in ("mse", "mae"):
            metric = self.metrics[f"{split}_{name}"]
            metric.update(prediction.reshape(-1), batch["y"].reshape(-1))
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "mse")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def on_validation_epoch_end(self) -> None:
        self.validated_at_step = self.global_step

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def configure_optimizers(self):
        return build_optimizer_and_schedule(self.net, dict(self.hparams.optimizer), dict(self.hparams.scheduler),
                                            int(self.trainer.estimated_stepping_batches))
