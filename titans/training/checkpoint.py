"""What training does with checkpoints: refuse to resume another model, and start a fine-tuning run from the weights
of a pretrained one (``init_from``). Reading them is titans.models.checkpoint_io's job."""

from __future__ import annotations

import logging
from pathlib import Path

from titans.data import build_tokenizer, tokenizer_fingerprint
from titans.models import TitansForCausalLM
from titans.models.checkpoint_io import checkpoint_model_config, load_lightning_checkpoint, net_state_dict

log = logging.getLogger(__name__)

#: model-config entries that change how the model runs, not what it computes: a resumed run may differ in them
RUNTIME_KEYS = {"max_position_embeddings", "loss_chunk_size", "transformers_version", "architectures",
                "_name_or_path", "torch_dtype", "dtype", "auto_map"}
RUNTIME_MEMORY_KEYS = {"impl", "compile", "checkpoint_group"}


def _comparable(config: dict) -> dict:
    """The config's entries that define the model, flat: nested memory fields become ``memory.<field>``."""
    out = {k: v for k, v in config.items() if k not in RUNTIME_KEYS and k != "memory"}
    for k, v in (config.get("memory") or {}).items():
        if k not in RUNTIME_MEMORY_KEYS:
            out[f"memory.{k}"] = v
    return out


def check_resume_checkpoint(path: str | Path, config: dict, allow_config_change: bool = False) -> None:
    """Before Lightning resumes from ``path``: the file must be a readable, safe train.py checkpoint whose model
    is the one this run builds (same variant, shapes and memory rule; runtime options may differ)."""
    ckpt = load_lightning_checkpoint(path, mmap=True)
    theirs, ours = _comparable(checkpoint_model_config(ckpt)), _comparable(config)
    if theirs != ours and not allow_config_change:
        raise ValueError(f"ckpt_path={path} was trained with another model config "
                         f"({_config_differences(theirs, ours)}, checkpoint -> this run): resume with the run's own "
                         f"overrides, or allow_config_change=true to continue with this config anyway")


def _config_differences(theirs: dict, ours: dict, limit: int = 6) -> str:
    """The differing model config entries, shortest first: "variant transformer -> mac, d_model 256 -> 128, ..."."""
    skip = {"transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype", "auto_map"}
    keys = [k for k in theirs.keys() | ours.keys() if k not in skip and theirs.get(k) != ours.get(k)]
    keys.sort(key=lambda k: (len(repr(theirs.get(k))) + len(repr(ours.get(k))), k))

    def short(value) -> str:
        text = repr(value)
        return text if len(text) <= 24 else text[:21] + "..."

    parts = [f"{k} {short(theirs.get(k))} -> {short(ours.get(k))}" for k in keys[:limit]]
    return ", ".join(parts + ([f"{len(keys) - limit} more"] if len(keys) > limit else [])) or "none"


def _check_same_tokenizer(checkpoint_tokenizer: dict, tokenizer, path: Path) -> None:
    """Raise when the checkpoint was trained with a tokenizer that gives other ids than ``tokenizer``."""
    ours = dict(getattr(tokenizer, "titans_config", None) or {})
    theirs = {k: v for k, v in checkpoint_tokenizer.items() if k != "_target_"}
    if ours == theirs:
        return
    try:
        same = tokenizer_fingerprint(build_tokenizer(**theirs)) == tokenizer_fingerprint(tokenizer)
    except Exception as err:  # e.g. a hub tokenizer offline: cannot tell
        log.warning("init_from=%s was trained with tokenizer %s, which cannot be built here "
                                            "(%s): make sure this run's tokenizer %s gives the same ids",
                                            path, theirs, err, ours)
        return
    if not same:
        raise ValueError(f"init_from={path} was trained with tokenizer {theirs}, which gives other ids than this "
                         f"run's {ours}: use the pretraining run's tokenizer "
                         f"(tokenizer=... / tokenizer.name_or_path=...)")


def load_pretrained_weights(net, path: str | Path, tokenizer=None) -> Path:
    """Initialise ``net`` (a TitansForCausalLM) with the weights of a pretrained model, to fine-tune it.

    ``path``: a Lightning ``.ckpt`` written by train.py, or a Hugging Face directory (save_pretrained,
    scripts/convert_checkpoint.py). Only the weights are loaded: no optimizer, scheduler, step or data position
    (resuming a run is ``ckpt_path``). The model must have the same shapes (same variant, size and vocabulary);
    with ``tokenizer`` given, the checkpoint's tokenizer must give the same ids. Returns the resolved path.
    """
    path = Path(path)
    tokenizer_config = None
    if path.is_dir():
        source = TitansForCausalLM.from_pretrained(path)
        state, config = source.state_dict(), source.config.to_dict()
    elif path.is_file():
        ckpt = load_lightning_checkpoint(path)
        state, config = net_state_dict(ckpt), checkpoint_model_config(ckpt)
        tokenizer_config = ckpt["hyper_parameters"].get("tokenizer")
    else:
        raise FileNotFoundError(
            f"init_from={path} does not exist: give a .ckpt written by train.py "
            f"(logs/<task>/runs/<run>/checkpoints/last.ckpt) or a Hugging Face model directory"
        )
    if tokenizer is not None and tokenizer_config:
        _check_same_tokenizer(tokenizer_config, tokenizer, path)
    own = net.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    mismatched = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(
            f"init_from={path} holds a {config.get('variant')} model that does not fit this run's "
            f"{net.config.variant} ({len(mismatched)} tensors of other shapes, {len(missing)} missing, "
            f"{len(unexpected)} unexpected; config checkpoint -> this run: "
            f"{_config_differences(config, net.config.to_dict())}): build the pretraining run's model "
            f"(model=..., size=..., its model.net overrides and tokenizer)"
        )
    net.load_state_dict(state)
    return path.resolve()
