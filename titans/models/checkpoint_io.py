"""Reading the checkpoints ``train.py`` writes, safely; the one place that knows their layout.

A training checkpoint is a Lightning ``.ckpt`` (``.pt``/``.pth`` accepted too) holding ``state_dict`` (the
LightningModule's: the model's weights under the ``net.`` prefix) and ``hyper_parameters.model_config`` (the
``TitansConfig`` that rebuilds the model). Evaluation (titans.eval.loading), fine-tuning and resuming
(titans.training.checkpoint) and the LightningModule's own ``load_from_checkpoint`` read them through here.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from titans.errors import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError, first_line

#: file suffixes of Lightning checkpoints (a Hugging Face model is a directory instead)
LIGHTNING_SUFFIXES = (".ckpt", ".pt", ".pth")
#: the LightningModule's attribute that holds the model: its weights' prefix in ``state_dict``
NET_PREFIX = "net."

_CORRUPT = "it is corrupt or not a torch file; use another checkpoint of the run"


def is_lightning_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    return path.is_file() and path.suffix in LIGHTNING_SUFFIXES


def safe_torch_load(path: str | Path, map_location: str = "cpu", mmap: bool = False) -> dict:
    """``torch.load`` restricted to tensors and plain Python containers (``weights_only=True``).

    A pickle may name any callable to run while it is read (``os.system`` included); the weights-only unpickler
    refuses every global outside torch's allow-list, so a crafted file fails here before anything runs (as
    :class:`UnsafeCheckpointError`). Our checkpoints (train.py's, Lightning's) need nothing beyond that list.
    Truncated files and arbitrary bytes raise :class:`CorruptCheckpointError`.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        text = str(err).strip()
        if "GLOBAL" not in text:  # no forbidden callable named: the bytes are just not a checkpoint
            raise CorruptCheckpointError(f"{path} is not a readable checkpoint: {_CORRUPT}") from None
        refused = next(line.strip() for line in text.splitlines() if "GLOBAL" in line)
        raise UnsafeCheckpointError(
            f"refused to load {path}: it is not a plain weights checkpoint ({refused[:160]}); loading it could "
            f"run code. train.py's checkpoints never need more: load only files you trust, re-exported as a "
            f"state_dict or a Hugging Face directory"
        ) from None
    except (RuntimeError, EOFError) as err:
        raise CorruptCheckpointError(f"{path} is not a readable checkpoint ({first_line(err)}): it is truncated "
                                     f"or not a torch file; use another checkpoint of the run") from None
    except (IndexError, KeyError, ValueError, UnicodeDecodeError, OverflowError, MemoryError):
        # what the unpickler raises on arbitrary bytes that happen to start like a pickle
        raise CorruptCheckpointError(f"{path} is not a readable checkpoint: {_CORRUPT}") from None


def load_lightning_checkpoint(path: str | Path, map_location: str = "cpu", mmap: bool = False) -> dict:
    """A training checkpoint, read safely, after checking it has the model's config and weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: pass a Lightning .ckpt file written by train.py "
                              f"or a Hugging Face directory")
    ckpt = safe_torch_load(path, map_location, mmap=mmap)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "model_config" not in hparams or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a titans training checkpoint (no hyper_parameters.model_config or "
                              f"state_dict): give a checkpoint written by train.py "
                              f"(logs/<task>/runs/<run>/checkpoints/last.ckpt)")
    return ckpt


def checkpoint_model_config(ckpt: dict) -> dict:
    """The ``TitansConfig`` entries of a training checkpoint (``TitansConfig(**checkpoint_model_config(ckpt))``)."""
    return ckpt["hyper_parameters"]["model_config"]


def net_state_dict(ckpt: dict) -> dict:
    """The model's weights of a training checkpoint, without the LightningModule's ``net.`` prefix."""
    return {k[len(NET_PREFIX):]: v for k, v in ckpt["state_dict"].items() if k.startswith(NET_PREFIX)}
