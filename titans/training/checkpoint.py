"""Load a trained model and its tokenizer from a Lightning checkpoint or a Hugging Face directory."""

from __future__ import annotations

from pathlib import Path

import torch


def _is_lightning_checkpoint(path: Path) -> bool:
    return path.is_file() and path.suffix in {".ckpt", ".pt", ".pth"}


class CorruptCheckpointError(ValueError):
    """The file is truncated or is not a torch checkpoint at all."""


class UnsafeCheckpointError(ValueError):
    """The file asks the unpickler for objects beyond tensors and plain containers (it could run code)."""


def safe_torch_load(path: str | Path, map_location: str = "cpu", mmap: bool = False) -> dict:
    """``torch.load`` restricted to tensors and plain Python containers (``weights_only=True``).

    A pickle may name any callable to run while it is read (``os.system`` included); the weights-only
    unpickler refuses every global outside torch's allow-list, so a crafted file fails here before
    anything runs. Our checkpoints (train.py's, Lightning's) need nothing beyond that list.
    """
    import pickle

    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        text = str(err).strip()
        if "GLOBAL" not in text:  # no forbidden callable named: the bytes are just not a checkpoint
            raise CorruptCheckpointError(f"{path} is not a readable checkpoint: it is corrupt or not a torch file; "
                                         f"use another checkpoint of the run") from None
        refused = next(line.strip() for line in text.splitlines() if "GLOBAL" in line)
        raise UnsafeCheckpointError(
            f"refused to load {path}: it is not a plain weights checkpoint ({refused[:160]}); loading it could "
            f"run code. train.py's checkpoints never need more: load only files you trust, re-exported as a "
            f"state_dict or a Hugging Face directory"
        ) from None
    except (RuntimeError, EOFError) as err:
        raise CorruptCheckpointError(f"{path} is not a readable checkpoint ({_first_line(str(err))}): it is "
                                     f"truncated or not a torch file; use another checkpoint of the run") from None
    except (IndexError, KeyError, ValueError, UnicodeDecodeError, OverflowError, MemoryError):
        # what the unpickler raises on arbitrary bytes that happen to start like a pickle
        raise CorruptCheckpointError(f"{path} is not a readable checkpoint: it is corrupt or not a torch file; "
                                     f"use another checkpoint of the run") from None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["unknown error"])[0][:200]


def load_lightning_checkpoint(path: str | Path, map_location: str = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: pass a Lightning .ckpt file or a Hugging Face directory")
    ckpt = safe_torch_load(path, map_location)
    hparams = ckpt.get("hyper_parameters", {})
    if "model_config" not in hparams or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a titans training checkpoint (no hyper_parameters.model_config/state_dict)")
    return ckpt


#: model-config entries that change how the model runs, not what it computes: a resumed run may differ in them
RUNTIME_KEYS = {"max_position_embeddings", "loss_chunk_size", "transformers_version", "architectures",
                "_name_or_path", "torch_dtype", "dtype"}
RUNTIME_MEMORY_KEYS = {"impl", "compile", "checkpoint_group"}


def _comparable(config: dict) -> dict:
    """The config's entries that define the model, flat: nested memory fields become ``memory.<field>``."""
    out = {k: v for k, v in config.items() if k not in RUNTIME_KEYS and k != "memory"}
    for k, v in (config.get("memory") or {}).items():
        if k not in RUNTIME_MEMORY_KEYS:
            out[f"memory.{k}"] = v
    return out


def check_resume_checkpoint(path: str | Path, model_config: dict, allow_config_change: bool = False) -> None:
    """Before Lightning resumes from ``path``: the file must be a readable, safe train.py checkpoint whose model
    is the one this run builds (same variant, shapes and memory rule; runtime options may differ)."""
    ckpt = safe_torch_load(path, mmap=True)
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if "model_config" not in hparams or "state_dict" not in ckpt:
        raise ValueError(f"ckpt_path={path} is not a train.py checkpoint (no hyper_parameters.model_config or "
                         f"state_dict): resume from checkpoints/last.ckpt of a run, or use init_from= for weights")
    theirs, ours = _comparable(hparams["model_config"]), _comparable(model_config)
    if theirs != ours and not allow_config_change:
        raise ValueError(f"ckpt_path={path} was trained with another model config "
                         f"({_config_differences(theirs, ours)}, checkpoint -> this run): resume with the run's own "
                         f"overrides, or allow_config_change=true to continue with this config anyway")


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


def _config_differences(theirs: dict, ours: dict, limit: int = 6) -> str:
    """The differing model config entries, shortest first: "variant transformer -> mac, d_model 256 -> 128, ..."."""
    skip = {"transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype"}
    keys = [k for k in theirs.keys() | ours.keys() if k not in skip and theirs.get(k) != ours.get(k)]
    keys.sort(key=lambda k: (len(repr(theirs.get(k))) + len(repr(ours.get(k))), k))

    def short(value) -> str:
        text = repr(value)
        return text if len(text) <= 24 else text[:21] + "..."

    parts = [f"{k} {short(theirs.get(k))} -> {short(ours.get(k))}" for k in keys[:limit]]
    return ", ".join(parts + ([f"{len(keys) - limit} more"] if len(keys) > limit else [])) or "none"


def _check_same_tokenizer(checkpoint_tokenizer: dict, tokenizer, path: Path) -> None:
    """Raise when the checkpoint was trained with a tokenizer that gives other ids than ``tokenizer``."""
    import logging

    from titans.data import build_tokenizer, tokenizer_fingerprint

    ours = dict(getattr(tokenizer, "titans_config", None) or {})
    theirs = {k: v for k, v in checkpoint_tokenizer.items() if k != "_target_"}
    if ours == theirs:
        return
    try:
        same = tokenizer_fingerprint(build_tokenizer(**theirs)) == tokenizer_fingerprint(tokenizer)
    except Exception as err:  # e.g. a hub tokenizer offline: cannot tell
        logging.getLogger(__name__).warning("init_from=%s was trained with tokenizer %s, which cannot be built here "
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
        from titans.models import TitansForCausalLM

        source = TitansForCausalLM.from_pretrained(path)
        state, config = source.state_dict(), source.config.to_dict()
    elif path.is_file():
        ckpt = load_lightning_checkpoint(path)
        state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        config = ckpt["hyper_parameters"]["model_config"]
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
