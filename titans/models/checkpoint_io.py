"""Reading the checkpoints ``train.py`` writes, safely; the one place that knows their layout.

A training checkpoint is a Lightning ``.ckpt`` (``.pt``/``.pth`` accepted too) holding ``state_dict`` (the
LightningModule's: the model's weights under the ``net.`` prefix) and ``hyper_parameters.model_config`` (the
``TitansConfig`` that rebuilds the model); train.py's also hold ``titans_run_config`` (the run's whole resolved
Hydra config: resume compares it) and ``titans_schedule`` (the learning-rate schedule as run: the model card
shows it). Evaluation (titans.eval.loading), fine-tuning and resuming
(titans.training.checkpoint) and the LightningModule's own ``load_from_checkpoint`` read them through here.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from titans.errors import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError, first_line

#: file suffixes of Lightning checkpoints (a Hugging Face model is a directory instead)
LIGHTNING_SUFFIXES = (".ckpt", ".pt", ".pth")
#: the LightningModule's attribute that holds the model: its weights' prefix in ``state_dict``
NET_PREFIX = "net."

#: top-level checkpoint entries written by train.py (plain containers, so weights-only loading reads them)
RUN_CONFIG = "titans_run_config"
EFFECTIVE_SCHEDULE = "titans_schedule"

_CORRUPT = "it is corrupt or not a torch file; use another checkpoint of the run"


def safe_torch_load(path: str | Path, map_location: str = "cpu", mmap: bool = False) -> dict:
    """``torch.load`` restricted to tensors and plain Python containers (``weights_only=True``).

    A pickle may name any callable to run while it is read (``os.system`` included); the weights-only unpickler
    refuses every global outside torch's allow-list, so a crafted file fails here before anything runs (as
    :class:`UnsafeCheckpointError`). Our checkpoints (train.py's, Lightning's) need nothing beyond that list.
    Truncated files, arbitrary bytes and plain (non-torch) pickles raise :class:`CorruptCheckpointError`. torch's
    own warnings about the file (pickle protocol, ...) are not shown: the error says what is wrong. ``mmap`` is
    used where the file allows it (torch's zip format); files of the legacy format are read whole.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True,
                              mmap=mmap and zipfile.is_zipfile(path))
    except Exception as err:  # noqa: BLE001 - classified below; anything else is re-raised as it is
        raise checkpoint_load_error(path, err) from None


def checkpoint_load_error(path: str | Path, err: BaseException) -> BaseException:
    """The CheckpointError that says why reading the weights file ``path`` failed with ``err`` (an error of
    ``torch.load(weights_only=True)``, also as raised inside ``from_pretrained``); ``err`` itself if it is no
    reading error."""
    if isinstance(err, CheckpointError):
        return err
    if isinstance(err, pickle.UnpicklingError):
        text = str(err).strip()
        if "GLOBAL" in text:
            refused = next(line.strip() for line in text.splitlines() if "GLOBAL" in line)
            return UnsafeCheckpointError(
                f"refused to load {path}: it is not a plain weights checkpoint ({refused[:160]}); loading it could "
                f"run code. train.py's checkpoints never need more: load only files you trust, re-exported as a "
                f"state_dict or a Hugging Face directory")
        if _is_plain_pickle(path):
            return CorruptCheckpointError(
                f"{path} is not a readable checkpoint: it is a plain Python pickle, not a torch checkpoint "
                f"(torch.save writes a zip archive); re-save its tensors with torch.save, or use another checkpoint")
        return CorruptCheckpointError(f"{path} is not a readable checkpoint: {_CORRUPT}")
    if isinstance(err, (RuntimeError, EOFError)):
        return CorruptCheckpointError(f"{path} is not a readable checkpoint ({first_line(err)}): it is truncated "
                                      f"or not a torch file; use another checkpoint of the run")
    if isinstance(err, (IndexError, KeyError, ValueError, UnicodeDecodeError, OverflowError, MemoryError)):
        # what the unpickler raises on arbitrary bytes that happen to start like a pickle
        return CorruptCheckpointError(f"{path} is not a readable checkpoint: {_CORRUPT}")
    return err


def _is_plain_pickle(path: str | Path) -> bool:
    """A pickle stream (PROTO opcode first) that is no torch zip archive: ``pickle.dump`` output, or torch's legacy
    format (which torch reads; so this is asked only after torch failed)."""
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"\x80" and not zipfile.is_zipfile(path)
    except OSError:
        return False


def load_pretrained_safely(load, path: str | Path, what: str = "model", **kwargs):
    """``load(path, **kwargs)`` for a ``from_pretrained`` (a model or tokenizer of a Hugging Face directory), with
    its reading errors as CheckpointError: a ``pytorch_model.bin`` that is a pickle (unsafe or plain), corrupt
    safetensors, a malformed ``tokenizer.json`` or ``config.json``, missing files. torch's and transformers'
    warnings about the files are not shown. ``what`` names what is loaded in the message ("model", "tokenizer")."""
    from safetensors import SafetensorError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load(str(path), **kwargs)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, RuntimeError) as err:
        weights = next((path / n for n in ("pytorch_model.bin", "model.safetensors") if (path / n).is_file()), path)
        classified = checkpoint_load_error(weights, err)
        if classified is err:
            raise
        raise classified from None
    except SafetensorError as err:
        raise CorruptCheckpointError(f"{path} holds unreadable safetensors weights ({first_line(err)}): use "
                                     f"another checkpoint") from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} could not be loaded: its {what} files are not readable ({first_line(err)}): "
                              f"give a directory written by save_pretrained (scripts/convert_checkpoint.py) or a "
                              f"Lightning .ckpt") from None
    except Exception as err:  # noqa: BLE001 - the tokenizers library raises plain Exception on a bad tokenizer.json
        if type(err).__name__ != "Exception":
            raise
        raise CheckpointError(f"{path} could not be loaded: its {what} files are not readable ({first_line(err)}): "
                              f"give a directory written by save_pretrained") from None


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
