"""What training does with checkpoints: write them atomically, refuse to resume another run's config, and start a
fine-tuning run from the weights of a pretrained one (``init_from``). Reading them is titans.models.checkpoint_io's
job."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from titans.data import build_tokenizer, tokenizer_fingerprint
from titans.models import TitansForCausalLM
from titans.models.variants import BLOCK_TYPES
from titans.errors import CheckpointError, CheckpointWriteError
from titans.models.checkpoint_io import (RUN_CONFIG, checkpoint_model_config, load_lightning_checkpoint,
                                         load_pretrained_safely, net_state_dict, safe_torch_load)

log = logging.getLogger(__name__)

#: model-config entries that change how the model runs, not what it computes: a resumed run may differ in them
RUNTIME_KEYS = {"max_position_embeddings", "loss_chunk_size", "transformers_version", "architectures",
                "_name_or_path", "torch_dtype", "dtype", "auto_map"}
RUNTIME_MEMORY_KEYS = {"impl", "compile", "checkpoint_group"}


#: model-config entries that only some token mixers read (``BlockType.uses_*``): a model none of whose blocks reads
#: one does not depend on it (TitansConfig's segment_len default was 512 until 2026-12-05: an LMM or Transformer
#: checkpoint of then records it)
MIXER_KEYS = {"segment_len": "uses_segment"}


def _comparable(config: dict) -> dict:
    """The config's entries that define the model, flat: nested memory fields become ``memory.<field>``; an entry
    of :data:`MIXER_KEYS` only where a block reads it."""
    blocks = [BLOCK_TYPES[b] for b in config.get("block_types") or () if b in BLOCK_TYPES]
    out = {k: v for k, v in config.items() if k not in RUNTIME_KEYS and k != "memory"
           and (k not in MIXER_KEYS or any(getattr(b, MIXER_KEYS[k]) for b in blocks))}
    for k, v in (config.get("memory") or {}).items():
        if k not in RUNTIME_MEMORY_KEYS:
            out[f"memory.{k}"] = v
    return out


#: entries of the run's resolved config that say where and how it runs, not what it trains: a resumed run may
#: change them (a key and everything under it). Everything else must be the checkpoint's, or
#: ``allow_config_change=true``.
RUNTIME_CONFIG_KEYS = (
    "paths", "hydra", "logger", "callbacks", "ckpt_path", "allow_config_change", "init_from", "init_from_required",
    "task_name", "run_name", "tags", "optimized_metric", "test", "train_tokens", "extras",
    "trainer.devices", "trainer.num_nodes", "trainer.accelerator", "trainer.strategy", "trainer.plugins",
    "trainer.max_steps", "trainer.max_epochs", "trainer.max_time", "trainer.min_steps", "trainer.min_epochs",
    "trainer.default_root_dir", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "trainer.enable_checkpointing", "trainer.log_every_n_steps", "trainer.val_check_interval",
    "trainer.check_val_every_n_epoch", "trainer.limit_val_batches", "trainer.limit_test_batches",
    "trainer.num_sanity_val_steps", "trainer.profiler", "trainer.detect_anomaly", "trainer.deterministic",
    "trainer.benchmark", "trainer.fast_dev_run", "trainer.sync_batchnorm", "trainer.barebones",
    "data.num_workers", "data.pin_memory",
    "model.net.memory.impl", "model.net.memory.compile", "model.net.memory.checkpoint_group",
    "model.net.loss_chunk_size", "model.net.max_position_embeddings",
)


def _is_runtime(key: str) -> bool:
    return any(key == r or key.startswith(r + ".") for r in RUNTIME_CONFIG_KEYS)


def comparable_run_config(config: Mapping) -> dict:
    """A resolved run config, flat (``data.seq_len``), without :data:`RUNTIME_CONFIG_KEYS`, and with the run's own
    directories written as ``${paths.<name>}`` (so a checkout moved elsewhere compares equal)."""
    paths = config.get("paths") or {}
    prefixes = sorted(((str(v), f"${{paths.{k}}}") for k, v in paths.items() if isinstance(v, str) and v),
                      key=lambda item: -len(item[0]))

    def normalise(value):
        if isinstance(value, str):
            for prefix, name in prefixes:
                if value == prefix or value.startswith(prefix.rstrip("/") + "/"):
                    return name + value[len(prefix):]
            return value
        if isinstance(value, (list, tuple)):
            return [normalise(v) for v in value]
        if isinstance(value, Mapping):
            return {k: normalise(v) for k, v in value.items()}
        return value

    flat: dict = {}

    def walk(node: Mapping, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if _is_runtime(name):
                continue
            if isinstance(value, Mapping) and value:
                walk(value, name + ".")
            else:
                flat[name] = normalise(value)

    walk(config, "")
    return flat


def run_config_differences(theirs: Mapping, ours: Mapping) -> str:
    """The entries two resolved run configs differ in, beyond the run-time ones: "data.seq_len 128 -> 64, ..."
    (empty when they are the same run)."""
    a, b = comparable_run_config(theirs), comparable_run_config(ours)
    return "" if a == b else _config_differences(a, b)


def check_resume_checkpoint(path: str | Path, config: dict | None, allow_config_change: bool = False,
                            run_config: Mapping | None = None) -> None:
    """Before Lightning resumes from ``path``: the file must be a readable, safe train.py checkpoint of this run.

    ``run_config`` (this run's resolved config) is compared with the one the checkpoint records, whole: only
    :data:`RUNTIME_CONFIG_KEYS` may differ (paths, loggers, devices, the training length, ...). The model config
    (``config``, a TitansConfig dict) is compared too (same variant, shapes and memory rule; runtime options may
    differ): it also covers checkpoints written before train.py recorded its config. ``allow_config_change``
    turns both refusals into warnings."""
    if config is None:  # a task network (forecasting, classification): only the run config is ours to compare
        ckpt = safe_torch_load(path, mmap=True)
        if not isinstance(ckpt, dict):
            raise CheckpointError(f"{path} is not a training checkpoint: give one written by train.py")
    else:
        ckpt = load_lightning_checkpoint(path, mmap=True)
    advice = "resume with the run's own overrides, or allow_config_change=true to continue with this config anyway"
    recorded = ckpt.get(RUN_CONFIG)
    if run_config is not None and isinstance(recorded, Mapping):
        differences = run_config_differences(recorded, run_config)
        if differences:
            if not allow_config_change:
                raise ValueError(f"ckpt_path={path} was trained with another config ({differences}, checkpoint -> "
                                 f"this run): {advice}")
            log.warning("resuming %s with another config (%s; allow_config_change=true)", path, differences)
    elif run_config is not None:
        log.warning("%s records no run config (written before train.py stored it): only its model config is "
                    "compared with this run's", path)
    if config is None:  # a task network (forecasting, classification): Lightning checks its weights
        return
    theirs, ours = _comparable(checkpoint_model_config(ckpt)), _comparable(config)
    if theirs != ours and not allow_config_change:
        raise ValueError(f"ckpt_path={path} was trained with another model config "
                         f"({_config_differences(theirs, ours)}, checkpoint -> this run): {advice}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, atomic on a local disk: the checkpoint goes to a temporary file in the same
    directory, is flushed to disk, and then renamed over the target (``os.replace``). A crash, a kill or a full
    disk during the save leaves the previous ``last.ckpt`` as it was (and loadable); a failed write removes its
    temporary file and raises :class:`~titans.errors.CheckpointWriteError` (one line: which file, why).
    Remote paths (``s3://``...) go through Lightning's own writer."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError):
                why = "the disk is full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else (err.strerror or str(err))
                raise CheckpointWriteError(
                    f"could not write checkpoint {path} ({why}); the previous file of that name, if any, is "
                    f"unchanged: free space or set paths.log_dir to another disk, then resume with ckpt_path=last"
                ) from err
            raise
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        source = load_pretrained_safely(TitansForCausalLM.from_pretrained, path)
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
