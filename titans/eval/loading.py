"""Load a model and its tokenizer for evaluation from a checkpoint path.

Accepted inputs:
- a Hugging Face directory (``save_pretrained`` output with ``config.json`` and tokenizer files);
- a Lightning checkpoint file (``*.ckpt``), read by the training package's loader
  (``titans.training.checkpoint.load_model_and_tokenizer``).
"""

from __future__ import annotations

from pathlib import Path

import torch


class CheckpointError(ValueError):
    """The given path is missing or is not a checkpoint this project can read."""


def _register_titans_models() -> None:
    """Importing titans.models registers the `titans` model type with the HF Auto classes."""
    try:
        import titans.models  # noqa: F401
    except ImportError:
        pass


def _load_hf_directory(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _register_titans_models()
    model = AutoModelForCausalLM.from_pretrained(str(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer


def _load_lightning_checkpoint(path: Path):
    try:
        from titans.training.checkpoint import load_model_and_tokenizer as load_training_checkpoint
    except ImportError as err:
        raise CheckpointError(
            f"{path} looks like a Lightning checkpoint, but titans.training.checkpoint is not importable "
            f"({err}). Install the full titans package or export the model as a Hugging Face directory."
        ) from err
    try:
        return load_training_checkpoint(str(path))
    except (ValueError, KeyError, RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path} could not be read as a titans training checkpoint: {err}") from err
    except Exception as err:  # e.g. pickle.UnpicklingError for a file that is not a checkpoint at all
        if type(err).__name__ == "UnpicklingError":
            raise CheckpointError(f"{path} is not a checkpoint (torch.load failed: {err})") from err
        raise


LIGHTNING_SUFFIXES = (".ckpt", ".pt", ".pth")


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


def load_model_and_tokenizer(path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None):
    """Return ``(model, tokenizer)`` from a Lightning ``.ckpt`` file or a Hugging Face directory.

    The model is put in eval mode on ``device`` (and cast to ``dtype`` when given, e.g. "bfloat16").
    Raises CheckpointError with what was wrong and what to pass instead.
    """
    path = validate_checkpoint_path(path)
    if path.is_dir():
        model, tokenizer = _load_hf_directory(path)
    else:
        model, tokenizer = _load_lightning_checkpoint(path)
    model = model.to(device)
    if dtype is not None:
        model = model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    model.eval()
    return model, tokenizer
