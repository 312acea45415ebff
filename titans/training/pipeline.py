"""The training job behind ``python train.py``: build everything from the Hydra config and fit."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import sys
import time
from pathlib import Path

import hydra
import hydra.errors
import lightning as L
from omegaconf import DictConfig, OmegaConf

from titans.errors import DataUnavailableError
from titans.training.callbacks import InterruptCheckpoint, RunConfigInCheckpoint
from titans.training.checkpoint import AtomicCheckpointIO, check_resume_checkpoint, load_pretrained_weights
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


def _callbacks_the_trainer_allows(callbacks: list, trainer_cfg: DictConfig) -> list:
    """The configured callbacks minus those a trainer flag turns off: ``enable_progress_bar=false`` (Lightning would
    refuse the configured TQDMProgressBar), ``enable_model_summary=false`` and ``enable_checkpointing=false``."""
    from lightning.pytorch.callbacks import Checkpoint, ModelSummary, ProgressBar

    off = []
    if trainer_cfg.get("enable_progress_bar") is False:
        off.append(ProgressBar)
    if trainer_cfg.get("enable_model_summary") is False:
        off.append(ModelSummary)
    if trainer_cfg.get("enable_checkpointing") is False:
        off += [Checkpoint, InterruptCheckpoint]
    return [c for c in callbacks if not isinstance(c, tuple(off))]


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _runs_on_cpu(trainer_cfg: DictConfig) -> bool:
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator == "cpu":
        return True
    if accelerator != "auto":
        return False
    import torch

    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


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
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} is not an integer: give e.g. seed=1337")
    run_name = cfg.get("run_name")
    if run_name is not None and (not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._=+-]*", str(run_name))):
        raise ValueError(f"run_name={run_name!r} is not a directory name: use letters, digits and . _ - = + "
                         f"(e.g. run_name=mac_lr3e-3)")
    devices = cfg.trainer.get("devices")
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and _runs_on_cpu(cfg.trainer):
        cores = usable_cores()
        if devices > cores:
            raise ValueError(f"trainer.devices={devices} would start {devices} training processes on the CPU, which "
                             f"has {cores} cores here: use trainer.devices={cores} or fewer (a CPU process per core "
                             f"at most), or a GPU machine")
    memory = (cfg.model.get("net") or {}).get("memory") if cfg.get("model") else None
    seq_len = cfg.data.get("seq_len") if cfg.get("data") else None
    chunk = memory.get("chunk_size") if isinstance(memory, DictConfig) else None
    if isinstance(chunk, int) and isinstance(seq_len, int) and seq_len > 0 and chunk > seq_len:
        raise ValueError(f"model.net.memory.chunk_size={chunk} is larger than data.seq_len={seq_len}: the memory "
                         f"would never update inside a training sequence (it learns once per chunk) and every "
                         f"sequence would be padded to {chunk} tokens; use a chunk_size <= {seq_len} (e.g. 16)")
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

    # the whole resolved config: stored in every checkpoint, compared when a run resumes (ckpt_path=...)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = _callbacks_the_trainer_allows(_instantiate_list(cfg.get("callbacks")), cfg.trainer)
    callbacks.append(RunConfigInCheckpoint(run_config))
    loggers = _instantiate_list(cfg.get("logger"))
    # checkpoints are written to a temporary file and renamed: a crash or a full disk keeps the previous last.ckpt
    configured = cfg.trainer.get("plugins") or []
    configured = [configured] if isinstance(configured, (str, DictConfig)) else list(configured)
    plugins = [instantiate(p) if isinstance(p, DictConfig) else p for p in configured] + [AtomicCheckpointIO()]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)

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

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.log_dir, cfg.task_name, cfg.paths.output_dir,
                                  run_config=run_config, run_name=cfg.get("run_name"))
    if ckpt_path:
        net_config = getattr(model.net, "config", None)  # TitansConfig; task networks are checked by Lightning
        check_resume_checkpoint(ckpt_path, net_config.to_dict() if net_config is not None else None,
                                bool(cfg.get("allow_config_change", False)), run_config=run_config)
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
    try:
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit as stop:
        signal_name = _interrupting_signal(stop)
        if signal_name is None:
            raise
        report_interrupt(cfg, trainer, signal_name, ckpt_path)
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


#: the signals train() reports, with their exit status (128 + the signal number, as a shell reports a killed job)
INTERRUPT_STATUS = {"SIGTERM": 128 + 15, "SIGINT": 128 + 2}


def _interrupting_signal(stop: SystemExit) -> str | None:
    """Lightning ends fit() on SIGTERM with its SIGTERMException (a SystemExit with status 0) and on Ctrl-C with
    ``sys.exit(1)`` inside its KeyboardInterrupt handler; any other SystemExit is not ours to report."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(stop, SIGTERMException):
        return "SIGTERM"
    if isinstance(stop.__context__, KeyboardInterrupt):
        return "SIGINT"
    return None


def _hydra_value(text: str) -> str:
    """``text`` as a Hydra override value (quoted when it holds characters the override grammar reads)."""
    if re.fullmatch(r"[A-Za-z0-9_./~+@%-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resume_command(ckpt: str | Path) -> str:
    """The command line that resumes this run from ``ckpt``: this process's interpreter and script with the run's
    overrides (Hydra's record of them), ``ckpt_path`` replaced."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "ckpt_path"]
    argv = [sys.executable, sys.argv[0] or "train.py", *kept, f"ckpt_path={_hydra_value(str(ckpt))}"]
    return " ".join(shlex.quote(a) for a in argv)


def report_interrupt(cfg: DictConfig, trainer: L.Trainer, signal_name: str, resumed_from: str | None) -> None:
    """After fit() was stopped by a signal: record it in ``metrics.json``, print one line naming the checkpoint
    saved and the command that resumes from it, and exit with 128 + the signal number (a scheduler sees a job that
    did not finish)."""
    status = INTERRUPT_STATUS[signal_name]
    saved = next((c.saved_path for c in trainer.callbacks if isinstance(c, InterruptCheckpoint) and c.saved_path),
                 None)
    if saved is None:  # no interrupt save (callbacks=none, or it failed): the last periodic one, if any
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
        saved = last if last and Path(last).is_file() else None
    step = int(trainer.global_step)
    if trainer.is_global_zero:
        command = resume_command(Path(saved).resolve()) if saved else None
        summary = {"output_dir": str(Path(cfg.paths.output_dir)), "ckpt_path": resumed_from, "global_step": step,
                   "interrupted": signal_name, "exit_status": status,
                   "resume_ckpt_path": str(Path(saved).resolve()) if saved else None, "resume_command": command,
                   "cpu_seconds": round(time.process_time(), 1),
                   **{k: float(v) for k, v in trainer.callback_metrics.items() if k != "step"}}
        write_metrics(Path(cfg.paths.output_dir), summary)
        if saved:
            line = (f"interrupted by {signal_name} at step {step}: saved {Path(saved).resolve()}; resume with: "
                    f"{command}")
        else:
            line = (f"interrupted by {signal_name} at step {step}: no checkpoint was saved; run the same command "
                    f"again to start over")
        print(line, file=sys.stderr, flush=True)
    raise SystemExit(status)
