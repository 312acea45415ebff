"""Architectures: Titans MAC / MAG / MAL / LMM, Transformer++, SWA, and the linear-memory baselines.

Every variant is a stack of one Llama-style macro block (pre-norm RMSNorm, residuals, SwiGLU MLP, RoPE
in attention) whose token mixer differs (``TitansConfig.block_types``). Each variant is one module of
titans.models.variants (its mixer, state and ``VariantSpec``), registered in ``VARIANTS``:

    transformer   attn (full causal)            swa   swa (sliding window)
    lmm, deltanet, gated_deltanet, ttt   lmm (NeuralMemory; the baselines use MemoryConfig.preset)
    mag   mag: W_o(RMSNorm_a(SWA(x)) * sigmoid(RMSNorm_b(LMM(x))))
    mac   mac: per segment h = M*(x) read-only, y = Attn([persistent | h | x]), (o, M') = LMM(y, M),
          out = y * sigmoid(RMSNorm(o))
    mal   lmm, swa, lmm, swa, ... (memory block then SWA block, Samba-like; odd counts end with lmm)

Decisions where the paper is silent (docs/design.md has them all, with the reasons):
- Persistent tokens (eq. 19) are one learned [n_persistent, d_model] matrix prepended to the embedded
  input once; they then flow through every block like tokens and their output rows are dropped
  before the final norm. Consequences: attention always sees them (the sliding window never evicts
  them; MAC's segment attention lists them first); every memory (LMM, MAG, MAL, MAC) processes them
  first, so each sequence starts from the same input-independent memory state; MAC treats them as
  a segment of their own (causal attention among themselves, no memory tokens) written into memory.
- Generation cache (TitansCache): the persistent rows run only on the first call; later calls see
  them through the cached prefix keys/values (attention) and through the memory state (LMM). KV
  caches are bounded by the window (swa, mag, mal) or the current segment (mac); only attn grows.
- MAC: h has one row per segment token (eq. 21): the memory's read of the segment through its output
  stage (RMSNorm, SiLU gate, output projection), so that h is in d_model; it gets the RoPE position of
  its token and is projected by the same W_K/W_V as the segment; only segment positions are queries; the
  retrieval query stream keeps its own conv cache across segments.
- Parameter matching: see titans.models.sizes.
"""
from transformers import AutoConfig, AutoModelForCausalLM

from .cache import TitansCache
from .config import TitansConfig
from .variants import BLOCK_TYPES, TITANS_VARIANTS, VARIANTS, MACState, MAGState, VariantSpec
from .modeling import TitansForCausalLM, TitansModel, TitansPreTrainedModel, output_cache
from .sizes import NOMINAL_PARAMS, SIZES, build_causal_lm, build_config, count_params, matched_ffn_dim, nominal_params

# AutoConfig / AutoModelForCausalLM know "titans" once the package is imported; a saved directory also loads
# without it, with trust_remote_code=True (titans.models.remote_code)
AutoConfig.register("titans", TitansConfig, exist_ok=True)
AutoModelForCausalLM.register(TitansConfig, TitansForCausalLM, exist_ok=True)

__all__ = [
    "TitansConfig", "TitansForCausalLM", "TitansModel", "TitansPreTrainedModel", "TitansCache", "MAGState", "MACState",
    "build_causal_lm", "build_config", "count_params", "matched_ffn_dim", "nominal_params", "SIZES", "NOMINAL_PARAMS",
    "VARIANTS", "TITANS_VARIANTS", "BLOCK_TYPES", "VariantSpec", "output_cache",
]
