"""Hugging Face model classes: TitansModel (backbone) and TitansForCausalLM."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from titans.layers import RMSNorm
from titans.memory import NeuralMemory

from .block import Block
from .cache import TitansCache
from .config import TitansConfig
from .loss import IGNORE_INDEX, linear_cross_entropy, next_token_targets
from .variants import SeqContext

# transformers 5.x renamed the cache of model outputs and of generate()'s model kwargs from ``past_key_values`` to
# ``cache``; 4.x only knows ``past_key_values``. Outputs are built with the installed version's name and both
# names are accepted as inputs, so generate() passes the cache back on every version.
CACHE_FIELD = "cache" if "cache" in getattr(CausalLMOutputWithPast, "__dataclass_fields__", {}) else "past_key_values"


def output_cache(output) -> TitansCache | None:
    """The generation cache a TitansModel / TitansForCausalLM output carries (under either transformers name)."""
    return getattr(output, CACHE_FIELD)


def _one_cache(past_key_values, cache):
    if past_key_values is not None and cache is not None and past_key_values is not cache:
        raise ValueError("pass the generation cache once, as past_key_values or as cache, not both")
    return cache if cache is not None else past_key_values


class TitansPreTrainedModel(PreTrainedModel):
    config_class = TitansConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = False
    _no_split_modules = ["Block"]

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)
        elif isinstance(module, TitansModel) and module.persistent is not None:
            nn.init.normal_(module.persistent, mean=0.0, std=std)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # we bring our own cache (TitansCache), created in forward

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Hugging Face's ``save_pretrained``, plus the model's code and ``auto_map`` in config.json: the directory
        loads with ``AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)`` where only torch and
        transformers are installed (titans.models.remote_code)."""
        from .remote_code import AUTO_MAP, write_remote_code

        write_remote_code(save_directory)
        had_auto_map, auto_map = hasattr(self.config, "auto_map"), getattr(self.config, "auto_map", None)
        self.config.auto_map = {**(auto_map or {}), **AUTO_MAP}
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:  # the in-memory config stays as it was (checkpoints compare configs)
            if had_auto_map:
                self.config.auto_map = auto_map
            else:
                del self.config.auto_map


def _protect_memory_init(module: nn.Module) -> None:
    """NeuralMemory initialises its own parameters (gate biases, M_0): keep HF's init away from them."""
    for sub in module.modules():
        if isinstance(sub, NeuralMemory):
            for inner in sub.modules():
                inner._is_hf_initialized = True


class TitansModel(TitansPreTrainedModel):
    """Embedding, persistent tokens, blocks and final norm; returns hidden states of the real tokens."""

    def __init__(self, config: TitansConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.persistent = nn.Parameter(torch.zeros(config.n_persistent, config.d_model)) if config.n_persistent else None
        self.layers = nn.ModuleList([Block(config, kind) for kind in config.block_types])
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        _protect_memory_init(self)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed

    def set_input_embeddings(self, value):
        self.embed = value

    def forward(self, input_ids=None, inputs_embeds=None, past_key_values: TitansCache | None = None,
                use_cache: bool = False, cache: TitansCache | None = None, **kwargs) -> BaseModelOutputWithPast:
        past_key_values = _one_cache(past_key_values, cache)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        if past_key_values is not None and not isinstance(past_key_values, TitansCache):
            raise TypeError(f"past_key_values must be a TitansCache (from a previous forward), got {type(past_key_values).__name__}")
        cache = past_key_values
        if cache is None and use_cache:
            cache = TitansCache(len(self.layers))
        seen = cache.seen_tokens if cache is not None else 0
        n_tokens = x.shape[1]
        n_prefix = self.config.n_persistent if seen == 0 else 0
        if n_prefix:  # the persistent tokens P (eq. 19), once per sequence: [P | x] (eqs. 22, 26, 29)
            x = torch.cat([self.persistent.to(x.dtype).expand(x.shape[0], -1, -1), x], 1)
        start = 0 if seen == 0 else self.config.n_persistent + seen
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        ctx = SeqContext(positions=positions, n_prefix=n_prefix, token_offset=seen)
        for i, block in enumerate(self.layers):
            x, state = block(x, ctx, cache.layers[i] if cache is not None else None)
            if cache is not None:
                cache.layers[i] = state
        if cache is not None:
            cache.seen_tokens = seen + n_tokens
        x = self.norm(x[:, n_prefix:])
        return BaseModelOutputWithPast(last_hidden_state=x, **{CACHE_FIELD: cache if use_cache else None})


class TitansForCausalLM(TitansPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed.weight"}

    def __init__(self, config: TitansConfig):
        super().__init__(config)
        self.model = TitansModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed

    def set_input_embeddings(self, value):
        self.model.embed = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        past_key_values: TitansCache | None = None,
        use_cache: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        return_dict: bool | None = None,
        return_logits: bool = True,
        cache: TitansCache | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """labels = input_ids (the shift is done here, HF convention; IGNORE_INDEX = -100 is ignored).

        ``return_logits=False`` with labels: the loss is computed by ``linear_cross_entropy`` (the LM head
        fused with the loss, chunk by chunk; no [T, vocab] logits are kept) and ``logits`` is None.
        Training uses it; the loss and its gradients are the same as with the logits."""
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("TitansForCausalLM does not support padding (attention_mask with zeros): "
                             "pack or left-truncate sequences to equal length, or run them one at a time")
        past_key_values = _one_cache(past_key_values, cache)
        use_cache = bool(use_cache) or past_key_values is not None
        out = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds, past_key_values=past_key_values,
                         use_cache=use_cache)
        hidden = out.last_hidden_state
        if labels is not None and not return_logits:
            hidden, targets = next_token_targets(hidden, labels.to(hidden.device))
            loss = linear_cross_entropy(hidden, self.lm_head.weight, targets, chunk_size=self.config.loss_chunk_size)
            return CausalLMOutputWithPast(loss=loss, logits=None, **{CACHE_FIELD: output_cache(out)})
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            work = torch.float64 if logits.dtype == torch.float64 else torch.float32
            predicting, targets = next_token_targets(logits, labels.to(logits.device))
            loss = F.cross_entropy(predicting.reshape(-1, logits.shape[-1]).to(work), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return CausalLMOutputWithPast(loss=loss, logits=logits, **{CACHE_FIELD: output_cache(out)})

    def supervised_logits(self, input_ids: torch.LongTensor, labels: torch.LongTensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [n, vocab], targets [n]) of the n positions whose next-token label is supervised: only those
        rows go through the LM head (task answers are a few tokens of long prompts). Labels as in ``forward``."""
        hidden = self.model(input_ids=input_ids).last_hidden_state
        hidden, targets = next_token_targets(hidden, labels.to(hidden.device))
        supervised = targets != IGNORE_INDEX
        return self.lm_head(hidden[supervised]), targets[supervised]

    def generate(self, inputs: torch.Tensor | None = None, *args, **kwargs):
        """GenerationMixin's ``generate``, after checking the prompt is not empty (the model has nothing to predict
        the first token from: there is no BOS token prepended for it)."""
        prompt = inputs if inputs is not None else kwargs.get("input_ids")
        if isinstance(prompt, torch.Tensor) and (prompt.dim() == 0 or prompt.shape[-1] == 0 or prompt.numel() == 0):
            raise ValueError(f"generate() got an empty prompt (input_ids of shape {tuple(prompt.shape)}): give at "
                             f"least one token per row, e.g. the tokenizer's eos_token_id as a start token")
        return super().generate(inputs, *args, **kwargs)

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None,
                                      inputs_embeds=None, use_cache=True, cache=None, **kwargs):
        """Feed only the tokens the cache has not seen yet (generate() hands the cache back as ``cache`` in
        transformers 5.x and as ``past_key_values`` in 4.x)."""
        past_key_values = _one_cache(past_key_values, cache)
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("TitansForCausalLM.generate does not support padded batches (attention_mask with "
                             "zeros): generate prompts of equal length, or one prompt at a time")
        if past_key_values is not None and past_key_values.seen_tokens > 0:
            input_ids = input_ids[:, past_key_values.seen_tokens:]
            inputs_embeds = None
        inputs = {"past_key_values": past_key_values, "use_cache": use_cache, "attention_mask": None}
        if kwargs.get("logits_to_keep"):  # generate() asks for the last position only: no [T, vocab] prefill logits
            inputs["logits_to_keep"] = kwargs["logits_to_keep"]
        if inputs_embeds is not None:
            inputs["inputs_embeds"] = inputs_embeds
        else:
            inputs["input_ids"] = input_ids.contiguous()
        return inputs

