"""``python eval.py ckpt=PATH suite=NAME``: load, run the suite, write the result JSON."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from titans.errors import CheckpointError
from titans.eval.loading import load_model_and_tokenizer, validate_checkpoint_path
from titans.eval.results import build_record, write_record
from titans.eval.suites import check_requirements, run_suite

log = logging.getLogger(__name__)


def _run_name(ckpt: str, suite_name: str) -> str:
    path = Path(ckpt)
    label = path.parent.parent.name if path.name == "last.ckpt" else (path.stem or path.name)
    return f"{suite_name}_{label}"


def _config_dict(cfg: DictConfig) -> dict:
    """The resolved config; unresolved where interpolations need a Hydra run (e.g. configs composed in tests)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - ${hydra:...} outside a Hydra run
        return OmegaConf.to_container(cfg, resolve=False)


def evaluate_checkpoint(cfg: DictConfig) -> Path:
    """Evaluate ``cfg.ckpt`` on ``cfg.suite``; return the path of the result JSON."""
    ckpt = cfg.get("ckpt")
    if ckpt is None or str(ckpt) in ("", "???"):
        raise CheckpointError("No checkpoint given: run `python eval.py ckpt=PATH suite=NAME` with PATH a Lightning "
                              ".ckpt file or a Hugging Face directory.")
    validate_checkpoint_path(ckpt)
    suite = OmegaConf.to_container(cfg.suite, resolve=True)
    check_requirements(suite)  # fail fast (hub offline, bad suite) before loading anything
    torch.manual_seed(int(cfg.get("seed", 0)))
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    model, tokenizer = load_model_and_tokenizer(ckpt, device=cfg.get("device", "cpu"), dtype=cfg.get("dtype"))
    if tokenizer is None:
        raise CheckpointError(f"{ckpt} holds no tokenizer configuration; save the tokenizer next to the model.")
    output_dir = Path(cfg.output_dir)
    run_name = cfg.get("output_name") or _run_name(str(ckpt), suite["name"])
    log.info("Evaluating %s on suite %s", ckpt, suite["name"])
    results, tables, figures = run_suite(suite, model, tokenizer, output_dir, run_name)
    record = build_record(suite["name"], ckpt, _config_dict(cfg), model, results, tables, figures)
    path = write_record(record, output_dir, cfg.get("output_name"))
    for name, table in tables.items():
        print(f"\n{suite['name']} - {name}\n{table}")
    print(f"\nResults written to {path}")
    for figure in figures:
        print(f"Figure written to {figure}")
    return path
