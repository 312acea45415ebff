"""AdamW parameter groups and the cosine-with-warmup learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn


def _no_decay(module: nn.Module, param_name: str, param: torch.Tensor) -> bool:
    """Norm weights, biases, embeddings and 1-d parameters (gate biases, scales) get no weight decay."""
    if param.ndim < 2 or param_name.endswith("bias"):
        return True
    return isinstance(module, nn.Embedding)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters into a decayed group and a non-decayed group (see ``_no_decay``)."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))  # tied weights appear twice; the embedding claims them first
            (no_decay if _no_decay(module, name, param) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the peak learning rate: linear warmup, then cosine decay to ``min_lr_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer_and_schedule(net: nn.Module, optimizer: dict, scheduler: dict, total_steps: int) -> dict:
    """AdamW over ``parameter_groups(net)`` and the per-step cosine schedule with ``scheduler.warmup_steps``, as
    Lightning's ``configure_optimizers`` returns them (the forecasting and classification modules use it)."""
    adamw = torch.optim.AdamW(parameter_groups(net, optimizer.get("weight_decay", 0.1)), lr=optimizer["lr"],
                              betas=tuple(optimizer.get("betas", (0.9, 0.95))), eps=optimizer.get("eps", 1e-8))
    warmup = min(int(scheduler.get("warmup_steps") or 0), total_steps)
    min_ratio = float(scheduler.get("min_lr_ratio", 0.1))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        adamw, lambda step: cosine_with_warmup(step, warmup, total_steps, min_ratio))
    return {"optimizer": adamw, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
