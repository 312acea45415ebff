"""lm-eval (0.4.13) model class ``titans``: any Hugging Face causal LM + tokenizer, Titans included.

    lm = TitansLM(pretrained="path/to/ckpt_or_hf_dir", batch_size=8)
    lm = TitansLM(pretrained=model, tokenizer=tokenizer)          # objects already in memory
    lm_eval.simple_evaluate(model="titans", model_args="pretrained=PATH", tasks=[...])

Scoring never feeds the model more than ``max_length`` tokens (default: the model's
``max_position_embeddings``, i.e. its training length): longer inputs are scored with rolling
windows (see ``windows.py``). Generation is greedy.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from titans.eval.generation import greedy_generate
from titans.eval.loading import load_model_and_tokenizer
from titans.eval.windows import ScoringWindow, rolling_windows

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 2048


def _as_bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y")
    return bool(value)


def _resolve_device(device: str | None) -> str:
    """lm-eval's CLI passes device="cuda" by default: fall back to the CPU when there is no GPU."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        log.warning("titans model: device=%s requested but CUDA is not available, using the CPU", device)
        return "cpu"
    return str(device)


def _model_max_length(model) -> int:
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_len"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_LENGTH


@register_model("titans")
class TitansLM(TemplateLM):
    """lm-eval adapter: loglikelihood, loglikelihood_rolling and generate_until, batched."""

    def __init__(
        self,
        pretrained=None,
        tokenizer=None,
        batch_size: int | str = 1,
        max_length: int | None = None,
        max_gen_toks: int = 256,
        device: str | None = None,
        dtype: str | None = None,
        add_bos_token: bool = False,
        truncate_generation_context: bool = True,
        **unused,
    ) -> None:
        super().__init__()
        if unused:
            log.warning("titans model: ignoring unknown model_args %s", sorted(unused))
        device = _resolve_device(device)
        if pretrained is None:
            raise ValueError("titans model needs pretrained=PATH (a Lightning .ckpt or a Hugging Face directory).")
        if isinstance(pretrained, (str, bytes)) or hasattr(pretrained, "__fspath__"):
            model, loaded_tokenizer = load_model_and_tokenizer(pretrained, device=device, dtype=dtype)
            tokenizer = loaded_tokenizer if tokenizer is None else tokenizer
        else:
            if tokenizer is None:
                raise ValueError("Passing a model object requires tokenizer=<a Hugging Face tokenizer>.")
            model = pretrained.to(device).eval()
        if isinstance(tokenizer, str):  # tokenizer=PATH in model_args
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        if tokenizer is None:
            raise ValueError(f"{pretrained} holds no tokenizer; pass tokenizer=PATH (a saved Hugging Face tokenizer).")
        self.model = model
        self.tokenizer = tokenizer
        self._device = torch.device(device)
        self._rank, self._world_size = 0, 1
        if str(batch_size).startswith("auto"):
            log.info("titans model: batch_size=auto is not supported, using 1")
            batch_size = 1
        self.batch_size = int(batch_size)
        self.max_length = int(max_length) if max_length is not None else _model_max_length(model)
        self.max_gen_toks = int(max_gen_toks)
        self.add_bos_token = _as_bool(add_bos_token)
        self.truncate_generation_context = _as_bool(truncate_generation_context)
        if self.tokenizer.eos_token_id is None:
            raise ValueError("The tokenizer has no eos_token_id; lm-eval needs one as end-of-text/prefix token.")

    # ---- tokenization -------------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    @property
    def tokenizer_name(self) -> str:
        return getattr(self.tokenizer, "name_or_path", "titans").replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        if add_special_tokens is None:
            add_special_tokens = self.add_bos_token
        ids = self.tokenizer.encode(string, add_special_tokens=False)
        if add_special_tokens and self.tokenizer.bos_token_id is not None:
            ids = [self.tokenizer.bos_token_id] + ids
        return ids

    def tok_decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=False)

    # ---- scoring ------------------------------------------------------------------------------
    @torch.no_grad()
    def _score_windows(self, windows: list[ScoringWindow], disable_tqdm: bool = True) -> list[tuple[float, bool]]:
        """(sum of target log-probs, all targets greedy) per window; batched, longest first."""
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i].input_ids))
        results: list[tuple[float, bool] | None] = [None] * len(windows)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eot_token_id
        for start in tqdm(range(0, len(order), self.batch_size), disable=disable_tqdm, desc="Scoring"):
            batch = [windows[i] for i in order[start : start + self.batch_size]]
            width = max(len(w.input_ids) for w in batch)
            # Right padding: a causal model's outputs at real positions never see the padding.
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            for row, window in enumerate(batch):
                input_ids[row, : len(window.input_ids)] = torch.tensor(window.input_ids)
            logits = self.model(input_ids=input_ids.to(self._device), use_cache=False).logits
            for row, window in enumerate(batch):
                n_in, n = len(window.input_ids), window.n_scored
                scored = logits[row, n_in - n : n_in]  # in float32 at least (a float64 model keeps float64)
                logprobs = F.log_softmax(scored if scored.dtype == torch.float64 else scored.float(), dim=-1)
                targets = torch.tensor(window.targets, device=logprobs.device)
                total = logprobs.gather(-1, targets[:, None]).sum().item()
                greedy = bool((logprobs.argmax(-1) == targets).all().item())
                results[order[start + row]] = (total, greedy)
        return results  # type: ignore[return-value]

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        windows, owner = [], []
        for index, (_, context_enc, continuation_enc) in enumerate(requests):
            for window in rolling_windows(context_enc, continuation_enc, self.max_length):
                windows.append(window)
                owner.append(index)
        scored = self._score_windows(windows, disable_tqdm=disable_tqdm)
        totals = [0.0] * len(requests)
        greedy = [True] * len(requests)
        for index, (logprob, is_greedy) in zip(owner, scored):
            totals[index] += logprob
            greedy[index] = greedy[index] and is_greedy
        results = list(zip(totals, greedy))
        for (cache_key, _, _), result in zip(requests, results):
            if cache_key is not None and hasattr(self, "cache_hook"):
                self.cache_hook.add_partial("loglikelihood", cache_key, result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of whole documents, every token scored once, prefix = BOS/EOS."""
        windowed = [(None, [self.prefix_token_id], self.tok_encode(req.args[0], add_special_tokens=False))
                    for req in requests]
        results = [logprob for logprob, _ in self._loglikelihood_tokens(windowed, disable_tqdm=disable_tqdm)]
        for req, result in zip(requests, results):
            if hasattr(self, "cache_hook"):
                self.cache_hook.add_partial("loglikelihood_rolling", (req.args[0],), result)
        return results

    # ---- generation ---------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy generation; requests sharing generation settings and context length share a batch."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        prepared = []
        for index, req in enumerate(requests):
            context, gen_kwargs = req.args
            gen_kwargs = dict(gen_kwargs or {})
            until = gen_kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen_kwargs.pop("max_gen_toks", self.max_gen_toks))
            if gen_kwargs.get("do_sample") and float(gen_kwargs.get("temperature", 1.0)) > 0:
                log.warning("titans model: sampling requested, generating greedily instead")
            context_ids = self.tok_encode(context)
            if self.truncate_generation_context:
                context_ids = context_ids[-max(1, self.max_length - max_new):]
            prepared.append((context_ids, until, max_new))
            groups[(len(context_ids), max_new)].append(index)

        outputs: list[str | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), disable=disable_tqdm, desc="Generating")
        for (_, max_new), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = torch.tensor([prepared[i][0] for i in chunk], dtype=torch.long, device=self._device)
                new_tokens = greedy_generate(self.model, batch, max_new, eos_token_id=self.eot_token_id)
                for i, tokens in zip(chunk, new_tokens):
                    text = self.tok_decode(tokens)
                    for stop in prepared[i][1] + [self.tok_decode([self.eot_token_id])]:
                        if stop and stop in text:
                            text = text.split(stop)[0]
                    outputs[i] = text
                    if hasattr(self, "cache_hook"):
                        self.cache_hook.add_partial("generate_until", requests[i].args, text)
                progress.update(len(chunk))
        progress.close()
        return outputs  # type: ignore[return-value]
