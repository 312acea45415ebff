"""The training job behind ``python train.py``: build everything from the Hydra config and fit."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import hydra
import hydra.errors
import lightning as L
from omegaconf import DictConfig, OmegaConf

from titans.errors import DataUnavailableError
from titans.training.checkpoint import check_resume_checkpoint, load_pretrained_weights
from titans.training.hydra_utils import resolve_ckpt_path

log = logging.getLogger(__name__)


def world_size_of(trainer: L.Trainer) -> int:
    return max(1, int(trainer.world_size))


def gradient_accumulation(global_batch_tokens: int | None, micro_batch: int, seq_len: int, world_size: int) -> int:
    """Micro-batches per optimizer step so one step sees ``global_batch_tokens`` tokens over all devices."""
    if not global_batch_tokens:
        return 1
    per_pass = micro_batch * seq_len * world_size
    accumulate = max(1, round(int(global_batch_tokens) / per_pass))
    if accumulate * per_pass != int(global_batch_tokens):
        log.warning(
            "global_batch_tokens=%s is not a multiple of micro_batch*seq_len*devices=%d: using %d tokens per step",
            global_batch_tokens, per_pass, accumulate * per_pass,
        )
    return accumulate


def instantiate(node: DictConfig, **kwargs):
    """``hydra.utils.instantiate`` that surfaces our own one-line errors instead of Hydra's wrapper."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except hydra.errors.InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, (DataUnavailableError, FileNotFoundError, ValueError, ConnectionError, OSError)):
            raise cause from None
        if isinstance(cause, TypeError) and "argument" in str(cause):  # an unknown or missing config key
            raise ValueError(f"{node.get('_target_', 'config')}: {cause}") from None
        raise


def _instantiate_list(group: DictConfig | None) -> list:
    if not group:
        return []
    return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def init_from_path(cfg: DictConfig) -> str | None:
    """``init_from`` (weights to start from, e.g. a pretrained model to fine-tune), checked before any work.

    A fine-tuning experiment sets ``init_from_required: true``: then a missing ``init_from`` is an error rather
    than a silent run from random weights (unless the run resumes: ``ckpt_path`` holds the weights)."""
    path = cfg.get("init_from")
    if path is None:
        if cfg.get("init_from_required", False) and not cfg.get("ckpt_path"):
            raise ValueError(
                f"{cfg.get('task_name', 'this run')} fine-tunes a pretrained model: give init_from=PATH (a .ckpt "
                f"written by train.py, e.g. logs/<task>/runs/<run>/checkpoints/last.ckpt, or a Hugging Face model "
                f"directory), or init_from_required=false to start from random weights"
            )
        return None
    if not Path(str(path)).exists():
        raise FileNotFoundError(
            f"init_from={path} does not exist: give a .ckpt written by train.py "
            f"(logs/<task>/runs/<run>/checkpoints/last.ckpt) or a Hugging Face model directory"
        )
    return str(path)


def check_run_config(cfg: DictConfig) -> None:
    """The run-level values Lightning would accept silently or reject with a traceback."""
    steps = cfg.trainer.get("max_steps")
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise ValueError(f"trainer.max_steps={steps!r} is not an integer: give the number of optimizer steps "
                         f"(e.g. trainer.max_steps=300) or train_tokens=N")
    if steps == 0 or steps < -1:
        raise ValueError(f"trainer.max_steps={steps}: nothing would be trained; give a positive number of optimizer "
                         f"steps (or train_tokens=N)")
    optimizer = cfg.model.get("optimizer") or {}
    if "lr" in optimizer:
        try:
            lr = float(optimizer.lr)
        except (TypeError, ValueError):
            lr = math.nan
        if not math.isfinite(lr) or lr < 0:  # 0 is allowed: a run that only evaluates or checks its start
            raise ValueError(f"model.optimizer.lr={optimizer.lr} must be a finite number >= 0 (e.g. 3e-3)")


def train(cfg: DictConfig) -> dict:
    """Fit the configured model; returns the final callback metrics."""
    check_run_config(cfg)
    init_from = init_from_path(cfg)
    L.seed_everything(cfg.seed, workers=True)

    # synthetic tasks (data=mqar) bring their own vocabulary and run with tokenizer=null
    tokenizer = instantiate(cfg.tokenizer) if cfg.get("tokenizer") else None
    datamodule: L.LightningDataModule = instantiate(cfg.data, tokenizer=tokenizer)

    callbacks = _instantiate_list(cfg.get("callbacks"))
    loggers = _instantiate_list(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    world = world_size_of(trainer)
    seq_len = int(cfg.data.get("seq_len") or 1)  # samples that are no token sequences (forecast windows) count 1
    accumulate = gradient_accumulation(cfg.get("global_batch_tokens"), cfg.data.batch_size, seq_len, world)
    trainer.accumulate_grad_batches = accumulate
    tokens_per_step = accumulate * cfg.data.batch_size * seq_len * world
    if cfg.get("train_tokens"):
        trainer.fit_loop.max_steps = math.ceil(float(cfg.train_tokens) / tokens_per_step)
    check_token_budget = getattr(datamodule, "check_token_budget", None)  # the passes over the training data
    if check_token_budget is not None and trainer.max_steps > 0:
        check_token_budget(trainer.max_steps * tokens_per_step)

    # What the data decides about the model (the vocabulary of its tokenizer, ...) comes from the data module; the
    # run's batch geometry from here. Hydra builds cfg.model.net (and its memory) before the LightningModule.
    model: L.LightningModule = instantiate(
        cfg.model, **datamodule.model_kwargs(cfg.model), tokens_per_step=tokens_per_step, _convert_="all")
    log.info("tokens per optimizer step: %d (micro-batch %d x seq %d x %d device(s) x %d accumulation)",
             tokens_per_step, cfg.data.batch_size, seq_len, world, accumulate)

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.log_dir, cfg.task_name, cfg.paths.output_dir)
    if ckpt_path:
        net_config = getattr(model.net, "config", None)  # TitansConfig; task networks are checked by Lightning
        if net_config is not None:
            check_resume_checkpoint(ckpt_path, net_config.to_dict(), bool(cfg.get("allow_config_change", False)))
        log.info("resuming from %s", ckpt_path)
        if init_from:
            log.info("init_from=%s is not loaded: the resumed checkpoint holds the weights", init_from)
    elif init_from:
        # a module whose network wraps a pretrained one (a classifier around a language model) names it
        loaded = load_pretrained_weights(getattr(model, "pretrained_net", model.net), init_from, tokenizer)
        log.info("initialised the model's weights from %s (weights only: fresh optimizer and schedule)", loaded)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    # weights_only: a resumed checkpoint is read without running any code it may carry
    trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    if _needs_final_validation(trainer, model):
        # a run stopped by max_time (or a max_steps off the validation grid) reports the model it ends with
        trainer.validate(model=model, datamodule=datamodule, verbose=False)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k != "step"}
    test_ckpt = None
    if cfg.get("test", False):  # the test split, with the best checkpoint by the monitored validation metric
        checkpoint = trainer.checkpoint_callback
        test_ckpt = (checkpoint.best_model_path if checkpoint else "") or None
        if test_ckpt and checkpoint.best_model_score is not None:
            metrics[f"best/{checkpoint.monitor}"] = float(checkpoint.best_model_score)
        trainer.test(model=model, datamodule=datamodule, ckpt_path=test_ckpt, weights_only=True, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k != "step"})
    if trainer.is_global_zero:
        summary = {"output_dir": str(Path(cfg.paths.output_dir)), "ckpt_path": ckpt_path,
                   "global_step": int(trainer.global_step), "cpu_seconds": round(time.process_time(), 1), **metrics}
        if cfg.get("test", False):
            summary.update(test_ckpt_path=test_ckpt, epochs=int(trainer.current_epoch))
        log.info("finished: %s", summary)
        metrics_path = write_metrics(Path(cfg.paths.output_dir), summary)
        for line in written_files(trainer, metrics_path):
            print(line, flush=True)
    return metrics


def written_files(trainer: L.Trainer, metrics_path: Path) -> list[str]:
    """One line per file the run leaves for the user: its checkpoints and metrics.json."""
    checkpoints = sorted({p for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)
                          for p in Path(cb.dirpath).glob("*.ckpt")})
    return ([f"Run directory: {metrics_path.parent}"] + [f"Checkpoint written to {p}" for p in checkpoints]
            + [f"Metrics written to {metrics_path}"])


def _needs_final_validation(trainer: L.Trainer, model: L.LightningModule) -> bool:
    return (trainer.global_step > 0 and trainer.limit_val_batches != 0 and not trainer.interrupted
            and getattr(model, "validated_at_step", trainer.global_step) != trainer.global_step)


def write_metrics(output_dir: Path, summary: dict) -> Path:
    """The run's final metrics as ``metrics.json`` in its output directory (read by sweeps and demos)."""
    path = output_dir / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return path
