"""What the commands print: stdout stays machine-readable (diagnostics go to stderr), long jobs show progress on
stderr, and every command names the files it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from train_helpers import ROOT


def _run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    env.pop("OMP_NUM_THREADS", None)  # let cpu_threads choose, and print its line
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_shell_completion_script_is_valid_bash(script, tmp_path):
    """`eval "$(python train.py -sc install=bash)"` must not meet a diagnostic line on stdout."""
    proc = _run(script, "-sc", "install=bash")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[titans] CPU threads:" in proc.stderr and "[titans]" not in proc.stdout
    completion = tmp_path / "completion.sh"
    completion.write_text(proc.stdout)
    check = subprocess.run(["bash", "-n", str(completion)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "hydra_bash_completion" in proc.stdout


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_cfg_job_output_is_yaml(script):
    proc = _run(script, "--cfg", "job")
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = yaml.safe_load(proc.stdout)
    assert isinstance(config, dict) and "task_name" in config, proc.stdout[:500]


def test_train_py_names_what_it_wrote_and_keeps_its_progress_bars_on_stderr(tmp_path):
    from train_helpers import SMALL, run_train

    proc = run_train([a for a in SMALL if not a.startswith("callbacks.progress_bar")], tmp_path)
    written = [line.split(" written to ", 1)[1] for line in proc.stdout.splitlines() if " written to " in line]
    assert any(p.endswith("last.ckpt") for p in written) and any(p.endswith("metrics.json") for p in written)
    assert all(Path(p).is_file() for p in written), written
    assert "Epoch 0" in proc.stderr and "Epoch 0" not in proc.stdout  # Lightning's bar, on stderr


def test_perplexity_shows_its_progress_on_stderr(capsys):
    import torch

    from titans.eval.perplexity import evaluate_perplexity
    from titans.models import build_causal_lm

    torch.manual_seed(0)
    model = build_causal_lm("lmm", "tiny", vocab_size=50, n_layers=1, d_model=32, n_heads=2).eval()
    evaluate_perplexity(model, torch.randint(0, 50, (64,)), [16, 32], 64, n_buckets=2)
    out, err = capsys.readouterr()
    assert "perplexity: 100%" in err and "6/6" in err and out == ""
