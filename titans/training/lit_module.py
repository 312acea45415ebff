"""LightningModule for causal language modelling with any ``TitansForCausalLM`` variant."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torchmetrics import MeanMetric, SumMetric

from titans.models import TitansConfig, TitansForCausalLM
from titans.models.checkpoint_io import EFFECTIVE_SCHEDULE, checkpoint_model_config, load_lightning_checkpoint
from titans.models.loss import count_targets
from titans.models.param_groups import group_grad_norms, total_norm
from titans.training.grad_monitor import GradNormMonitor
from titans.training.optim import cosine_with_warmup, parameter_groups


_log = logging.getLogger(__name__)
GRAD_MONITOR = "titans_grad_norm_monitor"


class LitCausalLM(L.LightningModule):
    """Trains a :class:`titans.models.TitansForCausalLM` (attribute ``net``).

    Args:
        net: the model (the training configs build it with ``titans.models.build_causal_lm``).
        optimizer: AdamW settings: ``lr``, ``weight_decay``, ``betas``, ``eps``.
        scheduler: ``warmup_steps`` or ``warmup_tokens``, and ``min_lr_ratio`` of the cosine decay.
        tokens_per_step: tokens per optimizer step over all devices (for ``warmup_tokens``), given by train().
        tokenizer: the tokenizer's config, stored so that a checkpoint can be evaluated on its own (the data module
            provides it).

    The checkpoint's ``hyper_parameters`` hold these arguments except ``net``, whose place ``model_config`` (the
    ``TitansConfig``) takes: ``load_from_checkpoint`` rebuilds the model from it.
    """

    def __init__(self, net: TitansForCausalLM, optimizer: dict, scheduler: dict, tokens_per_step: int | None = None,
                 tokenizer: dict | None = None) -> None:
        super().__init__()
        self.net = net
        self.save_hyperparameters(ignore=["net"])
        self.hparams["model_config"] = net.config.to_dict()
        # validation: next-token loss per supervised target, argmax accuracy on labelled batches, target count
        self.val_loss = MeanMetric()
        self.val_acc = MeanMetric()
        self.val_targets = SumMetric()
        self._step_started: float | None = None
        self._grad_monitor = GradNormMonitor()
        #: the global step of the latest completed validation (None before the first)
        self.validated_at_step: int | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        schedule = getattr(self, "effective_schedule", None)
        if schedule is not None:
            checkpoint[EFFECTIVE_SCHEDULE] = dict(schedule)
        checkpoint[GRAD_MONITOR] = self._grad_monitor.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if GRAD_MONITOR in checkpoint:
            self._grad_monitor.load_state_dict(checkpoint[GRAD_MONITOR])

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: str | Path, map_location=None, **kwargs) -> "LitCausalLM":
        """Lightning's loader, with ``net`` rebuilt from the checkpoint's ``model_config`` (read weights-only)."""
        if "net" not in kwargs:
            config = checkpoint_model_config(load_lightning_checkpoint(checkpoint_path, mmap=True))
            kwargs["net"] = TitansForCausalLM(TitansConfig(**config))
        kwargs.setdefault("weights_only", True)
        return super().load_from_checkpoint(checkpoint_path, map_location=map_location, **kwargs)

    # ---- forward / steps -------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=input_ids).logits

    @staticmethod
    def _labels(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's ``labels`` (aligned with input_ids, IGNORE_INDEX = not supervised, e.g. BABILong prompts and
        padding), or the input ids themselves for language-model batches."""
        labels = batch.get("labels")
        return batch["input_ids"] if labels is None else labels

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean next-token cross-entropy over the supervised targets (the model shifts the labels). The loss is
        fused with the LM head (``return_logits=False``): the [batch, length, vocab] logits are never stored."""
        return self.net(input_ids=batch["input_ids"], labels=self._labels(batch), return_logits=False).loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step}: lower model.optimizer.lr, "
                "keep trainer.gradient_clip_val, or resume from the last checkpoint (ckpt_path=last)"
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        # The loggers' x-axis, logged explicitly (Lightning takes a logged "step" as it): the optimizer steps done
        # before this batch. Lightning's own counter for it is off by one after some resumes.
        self.log("step", float(self.global_step), on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        n = count_targets(self._labels(batch))  # the targets the loss averages over
        if n == 0:
            return None
        if batch.get("labels") is None:  # language modelling: the fused loss, no [B, T, vocab] logits
            loss = self._loss(batch)
        else:  # task answers (MQAR values, BABILong answers): logits of the supervised positions only
            logits, targets = self.net.supervised_logits(batch["input_ids"], batch["labels"])
            logits = logits.to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
            loss = F.cross_entropy(logits, targets)
            self.val_acc.update((logits.argmax(dim=-1) == targets).float().mean(), weight=n)
        self.val_loss.update(loss.detach(), weight=n)
        self.val_targets.update(n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_targets.update(0)  # so that a validation without any target computes 0 (on every device)

    def on_validation_epoch_end(self) -> None:
        """val/loss, val/ppl (and val/acc on labelled data), reduced over all devices by torchmetrics."""
        if self.val_targets.compute() > 0:
            self.validated_at_step = self.global_step
            loss = float(self.val_loss.compute())
            # the values are already reduced over devices (torchmetrics); sync_dist only tells Lightning so
            self.log("val/loss", loss, prog_bar=True, sync_dist=True)
            self.log("val/ppl", math.exp(min(loss, 50.0)), prog_bar=True, sync_dist=True)
            if self.val_acc.update_called:  # the fraction of supervised tokens predicted exactly (argmax)
                self.log("val/acc", float(self.val_acc.compute()), prog_bar=True, sync_dist=True)
            # validation follows the training batch of step global_step - 1, and is logged at its step
            self.log("step", float(max(self.global_step - 1, 0)), sync_dist=True)
        for metric in (self.val_loss, self.val_acc, self.val_targets):
            metric.reset()

    # ---- throughput ------------------------------------------------------------------------------------------
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._step_started is None:
            self._step_started = time.perf_counter()
            self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)

    def on_train_batch_end(self, outputs: Any, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if (batch_idx + 1) % self.trainer.accumulate_grad_batches != 0:
            return
        elapsed = time.perf_counter() - (self._step_started or time.perf_counter())
        self._step_started = None
        tokens = batch["input_ids"].numel() * self.trainer.accumulate_grad_batches * self.trainer.world_size
        if elapsed > 0:
            self.log("train/tokens_per_sec", tokens / elapsed, prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/tokens_seen", float(tokens * (self.global_step)), on_step=True, on_epoch=False)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """``train/grad_norm``: the total gradient norm before clipping, and ``train/grad_norm/<group>`` by
        parameter group (titans.models.param_groups: memory gates, memory projections, memory state, attention,
        MLPs, embeddings, norms). A memory whose inner loop diverges shows here first: at gradient_clip_val 1.0 a
        norm of 1e5 means the step is 1e-5 of what the optimizer asked for. ``train/grad_norm_max_ratio`` is the
        largest norm / running-median ratio so far; above 100x one warning line names the group that grew."""
        groups = group_grad_norms(self.net.named_parameters())
        if not groups:
            return
        total = total_norm(groups)
        self.log("train/grad_norm", total, on_step=True, on_epoch=False)
        for name, value in groups.items():
            self.log(f"train/grad_norm/{name}", value, on_step=True, on_epoch=False)
        spike = self._grad_monitor.update(self.global_step, total, groups)
        self.log("train/grad_norm_max_ratio", self._grad_monitor.max_ratio, on_step=True, on_epoch=False)
        if spike is not None and rank_zero_only.rank == 0:
            _log.warning(spike.message())

    def on_fit_start(self) -> None:
        total = sum(p.numel() for p in self.net.parameters())
        embedding = self.net.get_input_embeddings().weight.numel()
        counts = {"params/total": total, "params/non_embedding": total - embedding}
        for logger in self.loggers:
            logger.log_hyperparams(counts)
        rank_zero_info(f"[titans] {self.net.config.variant}: {total / 1e6:.2f}M parameters "
                       f"({(total - embedding) / 1e6:.2f}M without embeddings)")

    # ---- optimisation ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        opt_cfg = dict(self.hparams.optimizer)
        sched_cfg = dict(self.hparams.scheduler)
        optimizer = torch.optim.AdamW(
            parameter_groups(self.net, opt_cfg.get("weight_decay", 0.1)),
            lr=opt_cfg["lr"],
            betas=tuple(opt_cfg.get("betas", (0.9, 0.95))),
            eps=opt_cfg.get("eps", 1e-8),
        )
        total_steps = int(self.trainer.estimated_stepping_batches)
        warmup = sched_cfg.get("warmup_steps")
        if warmup is None and sched_cfg.get("warmup_tokens") is not None:
            if not self.hparams.tokens_per_step:
                raise ValueError("scheduler.warmup_tokens needs tokens_per_step; set scheduler.warmup_steps instead")
            warmup = math.ceil(float(sched_cfg["warmup_tokens"]) / self.hparams.tokens_per_step)
        warmup = min(int(warmup or 0), total_steps)
        min_ratio = float(sched_cfg.get("min_lr_ratio", 0.1))
        #: the schedule as run (the warm-up is capped at the run's steps); checkpoints carry it for the model card
        self.effective_schedule = {"warmup_steps": warmup, "total_steps": total_steps, "min_lr_ratio": min_ratio}
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_with_warmup(step, warmup, total_steps, min_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
