"""Load a trained model and its tokenizer from a checkpoint path: the one loader behind ``eval.py ckpt=``, the lm-eval
model ``titans`` (``pretrained=``) and ``scripts/convert_checkpoint.py``.

Accepted inputs:
- a Hugging Face directory (``save_pretrained`` output with ``config.json`` and tokenizer files; any causal LM);
- a Lightning checkpoint file written by ``train.py`` (read by titans.models.checkpoint_io; its tokenizer is rebuilt
  from the configuration stored in it).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from titans.data import build_tokenizer
from titans.errors import CheckpointError
from titans.models import TitansConfig, TitansForCausalLM
from titans.models.checkpoint_io import (LIGHTNING_SUFFIXES, checkpoint_model_config, load_lightning_checkpoint,
                                         load_pretrained_safely, net_state_dict)


def validate_checkpoint_path(path) -> Path:
    """The checkpoint path, after checking it names a Lightning file or a Hugging Face directory."""
    if path is None or str(path) in ("", "???", "None", "null"):
        raise CheckpointError("No checkpoint given: pass ckpt=PATH (a Lightning .ckpt file or a Hugging Face "
                              "directory).")
    path = Path(str(path)).expanduser()
    if not path.exists():
        raise CheckpointError(
            f"Checkpoint not found: {path}. Pass ckpt=PATH pointing to a Lightning .ckpt file "
            f"or a Hugging Face directory written by save_pretrained."
        )
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"{path} is a directory without config.json, so it is not a Hugging Face model directory. "
                f"Pass the directory written by model.save_pretrained(...) + tokenizer.save_pretrained(...), "
                f"or a Lightning .ckpt file."
            )
    elif path.suffix not in LIGHTNING_SUFFIXES:
        raise CheckpointError(
            f"{path} is not a checkpoint: expected a Lightning '.ckpt' file or a Hugging Face directory "
            f"containing config.json."
        )
    return path


def _load_training_checkpoint(path: Path):
    ckpt = load_lightning_checkpoint(path)
    try:
        model = TitansForCausalLM(TitansConfig(**checkpoint_model_config(ckpt)))
        model.load_state_dict(net_state_dict(ckpt))
    except (ValueError, TypeError, KeyError, RuntimeError) as err:  # a config or weights this code cannot build
        raise CheckpointError(f"{path} could not be read as a titans training checkpoint: {err}") from err
    tokenizer_config = ckpt["hyper_parameters"].get("tokenizer")
    tokenizer = None
    if tokenizer_config:
        tokenizer = build_tokenizer(**{k: v for k, v in tokenizer_config.items() if k != "_target_"})
        # the context the model was trained on: what the tokenizer truncates to (and says when it is saved with it)
        tokenizer.model_max_length = int(model.config.max_position_embeddings)
    return model, tokenizer


def load_model_and_tokenizer(path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None):
    """Return ``(model, tokenizer)`` from a Lightning ``.ckpt`` file or a Hugging Face directory.

    The model is put in eval mode on ``device`` (and cast to ``dtype`` when given, e.g. "bfloat16"). The tokenizer is
    None for a training checkpoint that stored none. Raises CheckpointError with what was wrong and what to pass
    instead.
    """
    path = validate_checkpoint_path(path)
    if path.is_dir():
        model = load_pretrained_safely(AutoModelForCausalLM.from_pretrained, path,
                                       what="model (config.json and weights)")
        tokenizer = load_pretrained_safely(AutoTokenizer.from_pretrained, path,
                                           what="tokenizer (tokenizer.json, tokenizer_config.json)")
    else:
        model, tokenizer = _load_training_checkpoint(path)
    model = model.to(device)
    if dtype is not None:
        model = model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    return model.eval(), tokenizer
