"""Load a trained model and its tokenizer from a Lightning checkpoint or a Hugging Face directory."""

from __future__ import annotations

from pathlib import Path

import torch


def _is_lightning_checkpoint(path: Path) -> bool:
    return path.is_file() and path.suffix in {".ckpt", ".pt", ".pth"}


def load_lightning_checkpoint(path: str | Path, map_location: str = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: pass a Lightning .ckpt file or a Hugging Face directory")
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    hparams = ckpt.get("hyper_parameters", {})
    if "model_config" not in hparams or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a titans training checkpoint (no hyper_parameters.model_config/state_dict)")
    return ckpt


def load_model_and_tokenizer(path: str | Path, map_location: str = "cpu"):
    """Return ``(TitansForCausalLM, tokenizer)`` from a Lightning ``.ckpt`` or a ``save_pretrained`` directory."""
    from titans.models import TitansConfig, TitansForCausalLM

    path = Path(path)
    if path.is_dir():
        from transformers import AutoTokenizer

        model = TitansForCausalLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        return model.eval(), tokenizer
    if not _is_lightning_checkpoint(path):
        raise FileNotFoundError(
            f"{path} is neither a Lightning checkpoint (.ckpt) nor a Hugging Face model directory"
        )
    ckpt = load_lightning_checkpoint(path, map_location)
    hparams = ckpt["hyper_parameters"]
    model = TitansForCausalLM(TitansConfig(**hparams["model_config"]))
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    model.load_state_dict(state)
    tokenizer = None
    if hparams.get("tokenizer"):
        from titans.data import build_tokenizer

        tok_cfg = {k: v for k, v in hparams["tokenizer"].items() if k != "_target_"}
        tokenizer = build_tokenizer(**tok_cfg)
    return model.eval(), tokenizer
