"""LightningModule for causal language modelling with any ``TitansForCausalLM`` variant."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch

from titans.training.optim import cosine_with_warmup, parameter_groups


class LitCausalLM(L.LightningModule):
    """Wraps a :class:`titans.models.TitansForCausalLM` (attribute ``net``) for training.

    Args:
        net: keyword arguments of :func:`titans.models.build_causal_lm` (variant, size, overrides).
        optimizer: AdamW settings: ``lr``, ``weight_decay``, ``betas``, ``eps``.
        scheduler: ``warmup_steps`` or ``warmup_tokens``, and ``min_lr_ratio`` of the cosine decay.
        vocab_size: the tokenizer's vocabulary size, filled in by ``train.py``.
        tokens_per_step: tokens per optimizer step over all devices (for ``warmup_tokens`` and logging).
        tokenizer: the tokenizer config, stored so a checkpoint can be evaluated on its own.
        model_config: an exact ``TitansConfig`` dict; when given (checkpoint reload) it wins over ``net``.
    """

    def __init__(
        self,
        net: dict,
        optimizer: dict,
        scheduler: dict,
        vocab_size: int | None = None,
        tokens_per_step: int | None = None,
        tokenizer: dict | None = None,
        model_config: dict | None = None,
    ) -> None:
        super().__init__()
        from titans.models import TitansConfig, TitansForCausalLM, build_causal_lm

        if model_config is not None:
            self.net = TitansForCausalLM(TitansConfig(**model_config))
        else:
            net_kwargs = dict(net)
            if vocab_size is not None:
                net_kwargs["vocab_size"] = vocab_size
            self.net = build_causal_lm(**net_kwargs)
        self.save_hyperparameters()
        self.hparams["model_config"] = self.net.config.to_dict()
        self._step_started: float | None = None
        self._val_loss_sum, self._val_tokens = 0.0, 0
        self._val_correct, self._val_supervised = 0, 0
        #: the global step of the latest completed validation (None before the first)
        self.validated_at_step: int | None = None

    # ---- forward / steps -------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=input_ids).logits

    @staticmethod
    def _labels(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's ``labels`` (aligned with input_ids, -100 = not supervised, e.g. BABILong prompts and
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
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        labels = self._labels(batch)
        n = int((labels[:, 1:] != -100).sum())  # the targets the loss averages over (all tokens but the first for LM)
        if n == 0:
            return None
        if batch.get("labels") is None:
            loss = self._loss(batch)
            self._val_loss_sum += loss.item() * n
        else:
            loss, correct = self._supervised_loss_and_correct(batch)
            self._val_loss_sum += loss.item()
            self._val_correct += correct
            self._val_supervised += n
        self._val_tokens += n
        return loss

    @torch.no_grad()
    def _supervised_loss_and_correct(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy and the number of argmax hits over the supervised targets of a labelled batch
        (task answers: MQAR values, BABILong answers). Logits are formed for those positions only."""
        hidden = self.net.model(input_ids=batch["input_ids"]).last_hidden_state[:, :-1]
        targets = batch["labels"][:, 1:]
        supervised = targets != -100
        logits = self.net.lm_head(hidden[supervised])
        logits = logits.to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
        targets = targets[supervised]
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        return loss, int((logits.argmax(dim=-1) == targets).sum())

    def on_validation_epoch_start(self) -> None:
        self._val_loss_sum, self._val_tokens = 0.0, 0
        self._val_correct, self._val_supervised = 0, 0

    def on_validation_epoch_end(self) -> None:
        totals = torch.tensor([self._val_loss_sum, float(self._val_tokens), float(self._val_correct),
                               float(self._val_supervised)], dtype=torch.float64, device=self.device)
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum") if self.trainer.world_size > 1 else totals
        if totals[1] == 0:
            return
        self.validated_at_step = self.global_step
        loss = (totals[0] / totals[1]).item()
        self.log("val/loss", loss, prog_bar=True, sync_dist=False, rank_zero_only=True)
        self.log("val/ppl", math.exp(min(loss, 50.0)), prog_bar=True, sync_dist=False, rank_zero_only=True)
        if totals[3] > 0:  # labelled batches: the fraction of supervised tokens predicted exactly (argmax)
            self.log("val/acc", (totals[2] / totals[3]).item(), prog_bar=True, sync_dist=False, rank_zero_only=True)

    # ---- throughput ------------------------------------------------------------------------------------------
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Metrics are logged at Lightning's `_batches_that_stepped`; after a resume from a checkpoint written
        # mid-epoch its restart logic can leave that one step off. With one optimizer it equals global_step.
        self.trainer.fit_loop.epoch_loop._batches_that_stepped = self.trainer.global_step
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

    def on_fit_start(self) -> None:
        total = sum(p.numel() for p in self.net.parameters())
        embedding = self.net.get_input_embeddings().weight.numel()
        counts = {"params/total": total, "params/non_embedding": total - embedding}
        for logger in self.loggers:
            logger.log_hyperparams(counts)
        if self.trainer.is_global_zero:
            print(f"[titans] {self.net.config.variant}: {total / 1e6:.2f}M parameters "
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
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_with_warmup(step, warmup, total_steps, min_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
