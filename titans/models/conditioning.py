"""Conditioning probes of a whole model at a given input: the outer gradient norm (total and by parameter group)
and the exact input stream each memory layer sees (for ``titans.memory.conditioning.memory_trajectory``).

Used by the stability tests (tests/memory/test_memory_conditioning.py) and scripts/memory_grad_norm.py.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from titans.memory import NeuralMemory

from .param_groups import group_grad_norms, total_norm


def outer_grad_norm(model: nn.Module, input_ids: Tensor) -> tuple[float, float, dict[str, float]]:
    """(loss, total gradient norm, norm by parameter group) of the next-token loss on ``input_ids`` [B, T]
    (gradients are zeroed first and left on the parameters)."""
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=input_ids, labels=input_ids, return_logits=False).loss
    loss.backward()
    groups = group_grad_norms(model.named_parameters())
    return float(loss.detach()), total_norm(groups), groups


@torch.no_grad()
def memory_inputs(model: nn.Module, input_ids: Tensor) -> list[tuple[NeuralMemory, Tensor]]:
    """Every memory layer of ``model`` with the inputs it received in one forward over ``input_ids``, in order and
    concatenated over its calls (MAC writes each segment's attention output: the stream its state follows)."""
    seen: dict[int, list[Tensor]] = {}
    mems: dict[int, NeuralMemory] = {}
    hooks = []
    for module in model.modules():
        if isinstance(module, NeuralMemory):
            mems[id(module)] = module

            def hook(mod, args, _id=id(module)):
                seen.setdefault(_id, []).append(args[0].detach())

            hooks.append(module.register_forward_pre_hook(hook))
    try:
        model(input_ids=input_ids, return_logits=False)
    finally:
        for h in hooks:
            h.remove()
    return [(mems[i], torch.cat(xs, dim=1)) for i, xs in seen.items()]


__all__ = ["outer_grad_norm", "memory_inputs"]
