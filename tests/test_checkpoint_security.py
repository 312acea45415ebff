"""A checkpoint file cannot run code: every entry point that reads a .ckpt refuses a crafted pickle before its
payload runs, and tells truncated or random files apart from unsafe ones."""

import os
import subprocess
import sys

import pytest
import torch

from titans.errors import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError
from titans.models.checkpoint_io import load_lightning_checkpoint, safe_torch_load
from titans.training.checkpoint import load_pretrained_weights
from train_helpers import ROOT, assert_one_error_line


class _Payload:
    """Unpickling this object calls os.system (what an attacker's checkpoint would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"model_config": {"variant": "mac"}, "x": _Payload(marker)}},
               path)
    # the trap is real: an unrestricted load runs the payload
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_the_library_loaders_refuse_a_crafted_pickle(evil):
    path, marker = evil
    for load in (safe_torch_load, load_lightning_checkpoint):
        with pytest.raises(UnsafeCheckpointError, match="refused to load .*posix.system"):
            load(path)
    from titans.models import build_causal_lm

    with pytest.raises(UnsafeCheckpointError):
        load_pretrained_weights(build_causal_lm("lmm", "tiny", vocab_size=32), path)  # init_from=
    from titans.eval.loading import load_model_and_tokenizer

    with pytest.raises(CheckpointError, match="refused to load"):  # eval.py ckpt=, titans-lm-eval pretrained=
        load_model_and_tokenizer(path)
    assert not marker.exists()


def _run(args, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", OMP_NUM_THREADS="1",
               TITANS_COMPILE="false")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("entry", ["eval", "convert", "init_from", "resume"])
def test_every_command_line_entry_point_refuses_it(entry, evil, tmp_path):
    path, marker = evil
    args = {
        "eval": [str(ROOT / "eval.py"), f"ckpt={path}", "suite=smoke", f"paths.log_dir={tmp_path}"],
        "convert": [str(ROOT / "scripts" / "convert_checkpoint.py"), str(path), str(tmp_path / "hf")],
        "init_from": [str(ROOT / "train.py"), f"init_from={path}", "trainer.max_steps=1", f"paths.log_dir={tmp_path}"],
        "resume": [str(ROOT / "train.py"), f"ckpt_path={path}", "trainer.max_steps=1", f"paths.log_dir={tmp_path}"],
    }[entry]
    proc = _run(args, tmp_path)
    assert proc.returncode != 0
    assert not marker.exists(), f"{entry}: the checkpoint's code ran"
    assert_one_error_line(proc, "refused to load", "posix.system")


def test_truncated_and_random_files_are_called_corrupt_not_unsafe(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}, "hyper_parameters": {"model_config": {}}}, good)
    assert torch.equal(safe_torch_load(good)["state_dict"]["w"], torch.ones(3))
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:200])
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(bytes(range(256)) * 4)
    for path in (truncated, noise):
        with pytest.raises(CorruptCheckpointError, match="not a readable checkpoint"):
            safe_torch_load(path)
    # arbitrary bytes make the unpickler raise many kinds of errors: every one is reported as corrupt
    import random

    for seed in range(200):
        noise.write_bytes(random.Random(seed).randbytes(1024))
        with pytest.raises(CorruptCheckpointError):
            safe_torch_load(noise)
