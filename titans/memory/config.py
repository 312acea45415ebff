"""Configuration of the neural long-term memory (LMM) and the linear-memory baselines built from it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("gelu", "silu", "relu", "tanh")
IMPLS = ("scan", "autograd", "triton", "fused_cpu")
DECAY_TARGETS = ("init", "zero")

#: the memory of each variant family, as changes to the defaults: the one statement of the rule (docs/design.md)
PRESETS: dict[str, dict[str, Any]] = {
    # Titans LMM (paper defaults, NeurIPS version): deep memory, momentum, forgetting.
    "titans": {},
    # Linear-memory baselines from the same code: DeltaNet has no momentum (eta = 0) and no forgetting (alpha = 0),
    # Gated DeltaNet forgets, TTT keeps the deep memory without either.
    "deltanet": dict(depth=1, momentum=False, forget=False),
    "gated_deltanet": dict(depth=1, momentum=False, forget=True),
    "ttt": dict(depth=2, momentum=False, forget=False),
}


@dataclass
class MemoryConfig:
    """Hyper-parameters of :class:`titans.memory.NeuralMemory`.

    The field names are the keys of ``model.net.memory`` in the training configs (every field is there, so any
    can be overridden on the command line: ``model.net.memory.depth=1``); ``MemoryConfig(**d)`` rejects unknown
    keys with a ``TypeError`` naming them.

    Heads:
      num_heads   memory heads, each with its own memory over head_dim; None (the training configs) = the model's
                  attention heads (TitansConfig fills it in; a NeuralMemory needs a number).

    Memory network (paper section 3.1, NeurIPS section 3.3):
      depth       1 = a matrix ``M(x) = x W``; >= 2 = ``M(x) = x + LN(sigma(...sigma(x W_1)...) W_L)``
                  (residual + LayerNorm form; the LN is inside the inner-loop gradient).
      expansion   hidden width of deep memories = expansion * head_dim.
      activation  sigma of the deep memory: gelu | silu | relu | tanh.
    Update rule (eqs. 13-14, chunked as in eqs. 16-18):
      chunk_size  b: gradients of every token of a chunk are taken at the weights at the end of the
                  previous chunk.
      momentum    False = eta_t = 0 (no past surprise).  forget = False: alpha_t = 0 (no decay).
      per_layer_gates  one (theta, eta, alpha) per memory layer (NeurIPS App. B.3) instead of per head.
      channelwise_alpha  alpha_t is a vector over each layer's output channels (NeurIPS section 3.1).
      decay_target  what forgetting decays the weights toward: "init" (default) M_t = (1 - alpha_t) M_{t-1} +
                  alpha_t M_0 + S_t, i.e. eq. 13 applied to M - M_0, so a deep memory keeps the scale of its learned
                  initial weights; "zero" is eq. 13 as printed, M_t = (1 - alpha_t) M_{t-1} + S_t. The two are
                  the same for a matrix memory whose M_0 is zero (docs/design.md, "Conditioning of the memory").
      max_lr      theta_t = max_lr * sigmoid(linear(x)), so 0 < theta_t < max_lr.
      theta_init, eta_init, alpha_init  gate values at initialisation (through the projection biases).
    Implementation (same values and gradients either way):
      impl        "scan" (default): the chunk loop as one autograd operator with a hand-derived backward
                  (``titans.memory.scan``), run by the Triton kernels on CUDA tensors when triton is installed and
                  covers the configuration (``titans.memory.triton``; TITANS_TRITON=0 turns that off);
                  "triton": the Triton kernels explicitly (CUDA, or TRITON_INTERPRET=1 on CPU);
                  "autograd": the reference, autograd through every chunk (``chunked``);
                  "fused_cpu": the chunk loop and its backward as one C++ kernel each (``fused_cpu``; CPU,
                  float32/float64, scalar gates; built with g++ on first use, the torch scan otherwise).
      checkpoint_group  scan: chunks between the states saved for the backward (0 = every state while they
                  take at most 128 MiB per call, else about sqrt(chunks): see ``scan.auto_group``).
                  autograd: 0 = off; g > 0 = activation checkpointing over groups of g chunks.
      compile     scan/triton: compile the torch chunk step with torch.compile (fused kernels; pays a compile
                  time on the first call of each shape; off by default).
    Inputs: q, k, v = SiLU(causal depthwise conv(Linear(x))), q and k L2-normalised per head.
    """

    num_heads: int | None = 4
    head_dim: int | None = None  # default: dim // num_heads
    depth: int = 2
    expansion: int = 4
    activation: str = "gelu"
    chunk_size: int = 16
    use_conv: bool = True
    conv_kernel: int = 4
    momentum: bool = True
    forget: bool = True
    per_layer_gates: bool = True
    channelwise_alpha: bool = False
    max_lr: float = 0.1
    theta_init: float = 0.01
    eta_init: float = 0.5
    alpha_init: float = 0.01
    decay_target: str = "init"
    qk_l2norm: bool = True
    ln_eps: float = 1e-5
    norm_eps: float = 1e-6
    checkpoint_group: int = 0
    impl: str = "scan"
    compile: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(f"MemoryConfig: {msg}")

        if self.num_heads is not None and self.num_heads < 1:
            bad(f"num_heads must be >= 1 or None, got {self.num_heads}")
        if self.head_dim is not None and self.head_dim < 1:
            bad(f"head_dim must be >= 1 or None, got {self.head_dim}")
        if not 1 <= self.depth <= 4:
            bad(f"depth must be between 1 and 4, got {self.depth}")
        if self.expansion < 1:
            bad(f"expansion must be >= 1, got {self.expansion}")
        if self.activation not in ACTIVATIONS:
            bad(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.chunk_size < 1:
            bad(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.conv_kernel < 1:
            bad(f"conv_kernel must be >= 1, got {self.conv_kernel}")
        if self.decay_target not in DECAY_TARGETS:
            bad(f"decay_target must be one of {DECAY_TARGETS}, got {self.decay_target!r}")
        if self.impl not in IMPLS:
            bad(f"impl must be one of {IMPLS}, got {self.impl!r}")
        if self.compile and self.impl == "autograd":
            bad("compile=True needs impl='scan' or 'triton' (the autograd reference is never compiled)")
        if self.impl == "fused_cpu" and self.channelwise_alpha:
            bad("impl='fused_cpu' covers scalar forget gates only; use impl='scan' with channelwise_alpha")
        if self.checkpoint_group < 0:
            bad(f"checkpoint_group must be >= 0 (0 = the default: see the docstring), got {self.checkpoint_group}")
        if not self.max_lr > 0:
            bad(f"max_lr must be > 0, got {self.max_lr}")
        if not 0 < self.theta_init < self.max_lr:
            bad(f"theta_init must lie in (0, max_lr={self.max_lr}), got {self.theta_init}")
        if not 0 < self.eta_init < 1:
            bad(f"eta_init must lie in (0, 1), got {self.eta_init}")
        if not 0 < self.alpha_init < 1:
            bad(f"alpha_init must lie in (0, 1), got {self.alpha_init}")
        if self.channelwise_alpha and not self.per_layer_gates and self.depth > 1 and self.expansion != 1:
            bad("channelwise_alpha with a deep memory needs per_layer_gates=True "
                "(layers have different widths, so one channel-wise gate cannot be shared)")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "MemoryConfig":
        """``titans`` (defaults), ``deltanet`` (depth 1, eta=0, alpha=0), ``gated_deltanet`` (depth 1,
        eta=0) or ``ttt`` (depth 2, eta=0, alpha=0); ``overrides`` win."""
        if name not in PRESETS:
            raise ValueError(f"unknown memory preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolve_head_dim(self, dim: int) -> int:
        if self.num_heads is None:
            raise ValueError("MemoryConfig.num_heads is None: give the number of memory heads (in a model, "
                             "TitansConfig sets it to the model's n_heads)")
        if self.head_dim is not None:
            return self.head_dim
        if dim % self.num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={self.num_heads}; set head_dim explicitly")
        return dim // self.num_heads

    def layer_shapes(self, head_dim: int) -> list[tuple[int, int]]:
        """(d_in, d_out) of each memory layer: d -> h -> ... -> h -> d with h = expansion * d."""
        if self.depth == 1:
            return [(head_dim, head_dim)]
        hidden = self.expansion * head_dim
        dims = [head_dim] + [hidden] * (self.depth - 1) + [head_dim]
        return list(zip(dims[:-1], dims[1:]))


__all__ = ["MemoryConfig", "ACTIVATIONS", "IMPLS", "DECAY_TARGETS", "PRESETS"]
