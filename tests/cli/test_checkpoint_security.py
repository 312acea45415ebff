"""A checkpoint file cannot run code: every entry point that reads a .ckpt refuses a crafted pickle before its
payload runs, and tells truncated or random files apart from unsafe ones."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

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


def _entry_args(entry: str, path, tmp_path) -> list[str]:
    """The command line of each entry point that reads a checkpoint, given ``path``."""
    if entry == "lm_eval":
        from titans.eval.local_tasks import write_local_tasks

        write_local_tasks(tmp_path / "tasks")
    return {
        "eval": [str(ROOT / "eval.py"), f"ckpt={path}", "suite=smoke", f"paths.log_dir={tmp_path}"],
        "convert": [str(ROOT / "scripts" / "convert_checkpoint.py"), str(path), str(tmp_path / "hf")],
        "init_from": [str(ROOT / "train.py"), f"init_from={path}", "trainer.max_steps=1", f"paths.log_dir={tmp_path}"],
        "resume": [str(ROOT / "train.py"), f"ckpt_path={path}", "trainer.max_steps=1", f"paths.log_dir={tmp_path}"],
        "lm_eval": ["-m", "titans.eval.lm_eval_cli", "run", "--model", "titans", "--model_args", f"pretrained={path}",
                    "--tasks", "titans_local_rolling", "--include_path", str(tmp_path / "tasks")],
    }[entry]


@pytest.mark.parametrize("entry", ["eval", "convert", "init_from", "resume", "lm_eval"])
def test_every_command_line_entry_point_refuses_it(entry, evil, tmp_path):
    path, marker = evil
    proc = _run(_entry_args(entry, path, tmp_path), tmp_path)
    assert proc.returncode != 0
    assert not marker.exists(), f"{entry}: the checkpoint's code ran"
    assert_one_error_line(proc, "refused to load", "posix.system")


def _hf_dir_with_pickled_weights(root, payload) -> Path:
    """A Hugging Face directory (config.json, the model's code) whose weights are ``pytorch_model.bin`` written by
    ``payload(path)`` instead of model.safetensors."""
    from titans.models import build_causal_lm

    build_causal_lm("lmm", "tiny", vocab_size=32).save_pretrained(root)
    (root / "model.safetensors").unlink()
    payload(root / "pytorch_model.bin")
    return root


@pytest.fixture
def pickles(tmp_path):
    """A plain-pickle .ckpt, and Hugging Face directories whose pytorch_model.bin is a plain or a crafted pickle."""
    plain = tmp_path / "plain.ckpt"
    with open(plain, "wb") as f:
        pickle.dump({"state_dict": {"w": [1.0, 2.0]}, "hyper_parameters": {"model_config": {}}}, f)
    marker = tmp_path / "payload_ran"

    def plain_pickle(path):
        with open(path, "wb") as f:
            pickle.dump({"model.embed.weight": [0.0]}, f)

    return {"plain": plain, "marker": marker,
            "hf_plain": _hf_dir_with_pickled_weights(tmp_path / "hf_plain", plain_pickle),
            "hf_evil": _hf_dir_with_pickled_weights(tmp_path / "hf_evil", lambda p: torch.save({"x": _Payload(marker)}, p))}


def test_a_plain_pickle_is_named_as_such_without_torch_warnings(pickles, tmp_path):
    """It was "corrupt or not a torch file" after two lines of torch warnings, and on ckpt_path= (mmap) "mmap can only
    be used with files saved with ..."."""
    import warnings

    for mmap in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(CorruptCheckpointError, match="plain Python pickle, not a torch checkpoint"):
                safe_torch_load(pickles["plain"], mmap=mmap)
        assert not caught, [str(w.message) for w in caught]
    legacy = tmp_path / "legacy.ckpt"  # torch's legacy (non-zip) format is a torch file: it loads, mmap or not
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(safe_torch_load(legacy, mmap=True)["w"], torch.ones(2))


def test_a_hugging_face_directory_with_pickled_weights_is_a_checkpoint_error(pickles):
    from titans.eval.loading import load_model_and_tokenizer
    from titans.models import build_causal_lm

    with pytest.raises(CorruptCheckpointError, match="pytorch_model.bin is not a readable checkpoint: it is a plain"):
        load_model_and_tokenizer(pickles["hf_plain"])
    with pytest.raises(UnsafeCheckpointError, match="refused to load .*pytorch_model.bin.*posix.system"):
        load_model_and_tokenizer(pickles["hf_evil"])
    with pytest.raises(UnsafeCheckpointError):  # init_from= a directory
        load_pretrained_weights(build_causal_lm("lmm", "tiny", vocab_size=32), pickles["hf_evil"])
    assert not pickles["marker"].exists()


@pytest.mark.parametrize("entry, which, fragments", [
    ("eval", "hf_plain", ["pytorch_model.bin", "plain Python pickle"]),
    ("eval", "hf_evil", ["refused to load", "posix.system"]),
    ("lm_eval", "plain", ["plain.ckpt", "plain Python pickle"]),
    ("lm_eval", "hf_plain", ["pytorch_model.bin", "plain Python pickle"]),
    ("resume", "plain", ["plain.ckpt", "plain Python pickle"]),
    ("init_from", "hf_evil", ["refused to load", "posix.system"]),
    ("convert", "plain", ["plain.ckpt", "plain Python pickle"]),
])
def test_entry_points_report_pickles_as_one_line(entry, which, fragments, pickles, tmp_path):
    proc = _run(_entry_args(entry, pickles[which], tmp_path), tmp_path)
    line = assert_one_error_line(proc, *fragments)
    assert "mmap can only" not in line
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]  # torch's warnings are not shown before the line
    assert not pickles["marker"].exists()


def test_lm_eval_wrapper_reports_corrupt_and_missing_checkpoints_as_one_line(tmp_path):
    """titans-lm-eval raised CorruptCheckpointError with a traceback (exit 1)."""
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(bytes(range(256)) * 4)
    proc = _run(_entry_args("lm_eval", corrupt, tmp_path), tmp_path)
    assert_one_error_line(proc, "corrupt.ckpt", "not a readable checkpoint")
    proc = _run(_entry_args("lm_eval", tmp_path / "missing.ckpt", tmp_path), tmp_path)
    assert_one_error_line(proc, "missing.ckpt")


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
