"""LightningModule for sequence classification (genomics): a network mapping right-padded ``input_ids`` and
``lengths`` to class logits (``titans.models.classification.SequenceClassifier``), trained with cross-entropy.

Metrics: ``val/loss``, ``val/acc``, ``test/acc`` (top-1 accuracy over every sequence of the split, accumulated by
torchmetrics). ``pretrained_net`` is what ``init_from`` loads: the backbone language model.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from titans.training.optim import build_optimizer_and_schedule


class LitSequenceClassifier(L.LightningModule):
    """Args:
        net: the classifier (``nn.Module`` with ``num_classes`` logits; Hydra instantiates it from ``model.net``).
        optimizer, scheduler: as for :class:`titans.training.forecasting.LitForecaster`.
        tokens_per_step: given by train(); unused here. tokenizer: the tokenizer's config (from the data module),
            stored in the checkpoint's hyper-parameters.
    """

    def __init__(self, net: nn.Module, optimizer: dict, scheduler: dict, tokens_per_step: int | None = None,
                 tokenizer: dict | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net = net
        classes = net.head.out_features
        self.val_loss = MeanMetric()
        self.val_acc = MulticlassAccuracy(classes, average="micro")
        self.test_acc = MulticlassAccuracy(classes, average="micro")
        #: the global step of the latest completed validation (None before the first)
        self.validated_at_step: int | None = None

    @property
    def pretrained_net(self) -> nn.Module:
        """The part of the network that a pretraining checkpoint initialises (``init_from``)."""
        return self.net.lm

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(input_ids, lengths)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self.net(batch["input_ids"], batch["lengths"]), batch["labels"])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.global_step}: "
                                     f"lower model.optimizer.lr or keep trainer.gradient_clip_val")
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.net(batch["input_ids"], batch["lengths"])
        self.val_loss.update(F.cross_entropy(logits, batch["labels"]), weight=len(batch["labels"]))
        self.val_acc.update(logits, batch["labels"])
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.validated_at_step = self.global_step

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.test_acc.update(self.net(batch["input_ids"], batch["lengths"]), batch["labels"])
        self.log("test/acc", self.test_acc, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        return build_optimizer_and_schedule(self.net, dict(self.hparams.optimizer), dict(self.hparams.scheduler),
                                            int(self.trainer.estimated_stepping_batches))
