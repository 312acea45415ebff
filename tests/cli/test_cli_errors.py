"""Expected errors of train.py and eval.py: exit status 2, one `error: ...` line, no traceback."""

import os
import random
import subprocess
import sys

import pytest
import torch

from train_helpers import ROOT, SMALL, assert_one_error_line, run_dirs, run_train


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "random.ckpt").write_bytes(random.Random(0).randbytes(4096))  # fixed bytes: a reproducible test
    good = root / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}, "hyper_parameters": {"model_config": {}}}, good)
    (root / "truncated.ckpt").write_bytes(good.read_bytes()[:300])
    empty = root / "empty_corpus"
    empty.mkdir()
    (empty / "train.txt").write_text("")
    (empty / "validation.txt").write_text("")
    (root / "empty_dir").mkdir()
    empty_train = root / "empty_train"  # only the training file is empty
    empty_train.mkdir()
    (empty_train / "train.txt").write_text("")
    (empty_train / "validation.txt").write_text("Shall I compare thee to a summer's day? " * 40)
    bad_tokenizer = root / "bad_tokenizer"
    bad_tokenizer.mkdir()
    (bad_tokenizer / "tokenizer.json").write_text('{"version": "1.0", "model": {')
    return root


def _cores() -> int:
    from titans.training.pipeline import usable_cores

    return usable_cores()


@pytest.mark.parametrize("overrides, fragments", [
    (["data.seq_len=0"], ["seq_len"]),
    (["model.net.memory.chunk_size=0"], ["chunk_size"]),
    (["model.optimizer.lr=nan"], ["model.optimizer.lr=nan"]),
    (["trainer.max_steps=abc"], ["trainer.max_steps='abc'"]),
    (["trainer.max_steps=0"], ["nothing would be trained"]),
    (["+model.net.vocab_size=10"], ["vocab_size=10"]),
    (["data.data_dir={tmp}/nowhere"], ["nowhere"]),
    (["data.data_dir={bad}/empty_corpus"], ["empty_corpus"]),
    (["ckpt_path={bad}/random.ckpt"], ["random.ckpt", "not a readable checkpoint"]),
    (["ckpt_path={bad}/truncated.ckpt"], ["truncated.ckpt", "not a readable checkpoint"]),
    (["init_from={bad}/random.ckpt"], ["random.ckpt"]),
    # the "not yet tried" list
    (["data.batch_size=0"], ["batch_size must be positive"]),
    (["data.data_dir={bad}/empty_dir"], ["empty_dir/train.txt"]),
    (["data.data_dir={bad}/empty_train"], ["empty_train/train.txt has 0 tokens"]),
    (["tokenizer=llama2", "tokenizer.name_or_path={bad}/bad_tokenizer"],
     ["tokenizer.name_or_path=", "bad_tokenizer is not a readable tokenizer"]),
    (["trainer.accelerator=cpu", "trainer.devices={many}"],
     ["trainer.devices={many} would start {many} training processes on the CPU, which has {cores} cores"]),
    (["model.net.memory.chunk_size=128"], ["model.net.memory.chunk_size=128 is larger than data.seq_len=64"]),
    (["run_name=a/b"], ["run_name='a/b' is not a directory name"]),
])
def test_train_py_expected_errors_are_one_line(overrides, fragments, bad_files, tmp_path):
    values = dict(tmp=tmp_path, bad=bad_files, cores=_cores(), many=_cores() + 1)
    overrides = [o.format(**values) for o in overrides]
    fragments = [f.format(**values) for f in fragments]
    proc = run_train([*SMALL, *overrides], tmp_path, check=False)
    assert_one_error_line(proc, *fragments)


def test_full_error_brings_the_traceback_back(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    proc = run_train([*SMALL, "data.seq_len=0"], tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_eval_py_missing_checkpoint_is_one_line(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "eval.py"), f"ckpt={tmp_path / 'missing.ckpt'}", "suite=smoke",
                           f"paths.log_dir={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert_one_error_line(proc, "missing.ckpt")


def test_eval_py_without_ckpt_is_one_line(tmp_path):
    proc = _run_eval(["suite=smoke"], tmp_path)
    assert_one_error_line(proc, "No checkpoint given", "ckpt=PATH")


def test_eval_py_with_a_malformed_tokenizer_json_is_one_line(tmp_path):
    from titans.data import build_tokenizer
    from titans.models import build_causal_lm

    directory = tmp_path / "hf"
    tokenizer = build_tokenizer("bytes")
    build_causal_lm("lmm", "tiny", vocab_size=len(tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "tokenizer.json").write_text('{"version": "1.0", "model": {')
    proc = _run_eval([f"ckpt={directory}", "suite=smoke"], tmp_path)
    assert_one_error_line(proc, f"{directory} could not be loaded: its tokenizer (tokenizer.json, "
                                "tokenizer_config.json) files are not readable")


@pytest.mark.parametrize("overrides", [["trainer.enable_progress_bar=false"], ["trainer.precision=bf16-mixed"]])
def test_these_work_on_a_cpu(overrides, tmp_path):
    """enable_progress_bar=false failed (Lightning refused the configured progress bar); bf16-mixed autocasts on CPU."""
    import json

    run_train([*SMALL, "trainer.max_steps=2", "logger=csv", *overrides], tmp_path)
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 2 and metrics["val/loss"] > 0


@pytest.fixture(scope="module")
def small_run_and_output(tmp_path_factory):
    from train_helpers import run_dirs

    log_dir = tmp_path_factory.mktemp("run")
    proc = run_train(SMALL, log_dir)
    (run,) = run_dirs(log_dir)
    return run / "checkpoints" / "last.ckpt", proc


@pytest.fixture(scope="module")
def small_run(small_run_and_output):
    return small_run_and_output[0]


def test_a_fresh_run_has_no_resume_warnings(small_run_and_output):
    small_run, proc = small_run_and_output
    output = proc.stdout + proc.stderr
    assert "was called without a model" not in output and "no last checkpoint" not in output
    assert not small_run.with_name("on_exception.ckpt").exists()  # a finished run leaves no interrupt save


def test_resuming_with_another_config_is_refused_naming_the_difference(small_run, tmp_path):
    proc = run_train([*SMALL, f"ckpt_path={small_run}", "model.net.memory.chunk_size=8", "trainer.max_steps=6"], tmp_path,
                     check=False)
    assert_one_error_line(proc, "model.net.memory.chunk_size 16 -> 8", "allow_config_change=true")
    # the whole config is compared, not only the model's: a changed data config was trained on without a word
    proc = run_train([*SMALL, f"ckpt_path={small_run}", "data.seq_len=32", "data.batch_size=4", "trainer.max_steps=6"],
                     tmp_path, check=False)
    assert_one_error_line(proc, "another config (", "data.seq_len 64 -> 32", "data.batch_size 2 -> 4",
                          "allow_config_change=true")
    # run-time keys (the training length, the memory implementation, loggers, callbacks, devices) may differ
    proc = run_train([*SMALL, f"ckpt_path={small_run}", "model.net.memory.impl=autograd", "logger=csv",
                      "trainer.max_steps=5", "trainer.val_check_interval=5", "trainer.devices=1",
                      "callbacks.model_checkpoint.every_n_train_steps=5"], tmp_path)
    assert "another config" not in proc.stdout + proc.stderr
    # the explicit switch lets a changed update rule continue
    proc = run_train([*SMALL, f"ckpt_path={small_run}", "model.net.memory.max_lr=0.2", "trainer.max_steps=5",
                      "trainer.val_check_interval=5"], tmp_path, check=False)
    assert_one_error_line(proc, "model.net.memory.max_lr")
    run_train([*SMALL, f"ckpt_path={small_run}", "model.net.memory.max_lr=0.2", "allow_config_change=true",
               "trainer.max_steps=5", "trainer.val_check_interval=5"], tmp_path)


def test_init_from_a_checkpoint_of_another_architecture_is_one_line(small_run, tmp_path):
    proc = run_train([*SMALL, "model=lmm", f"init_from={small_run}"], tmp_path, check=False)
    assert_one_error_line(proc, f"init_from={small_run} holds a mac model that does not fit this run's lmm",
                          "build the pretraining run's model")


def test_ckpt_path_last_resumes_only_a_run_of_this_config(small_run, tmp_path):
    """ckpt_path=last took the newest checkpoint under logs/<task>/** of any run of that task name."""
    log_dir = small_run.parents[4]  # <log_dir>/train/runs/<run>/checkpoints/last.ckpt
    proc = run_train([*SMALL, "ckpt_path=last", "data.seq_len=32"], log_dir, check=False)
    assert_one_error_line(proc, "ckpt_path=last found 1 checkpoint(s) of task_name=train",
                          "none of a run with this config", "data.seq_len 64 -> 32")
    proc = run_train([*SMALL, "ckpt_path=last", "trainer.max_steps=5", "trainer.val_check_interval=5"], log_dir)
    assert f"ckpt_path=last: resuming {small_run} " in proc.stdout + proc.stderr
    proc = run_train([*SMALL, "ckpt_path=last", "task_name=never_trained"], tmp_path, check=False)
    assert_one_error_line(proc, "ckpt_path=last found no earlier run of task_name=never_trained")


def test_a_named_run_continues_in_its_own_directory(tmp_path):
    import json

    run_train([*SMALL, "run_name=named", "trainer.max_steps=2", "logger=csv"], tmp_path)
    proc = run_train([*SMALL, "run_name=named", "ckpt_path=last", "logger=csv"], tmp_path)
    run = tmp_path / "train" / "runs" / "named"
    assert f"ckpt_path=last: resuming this run's {run / 'checkpoints' / 'last.ckpt'}" in proc.stdout + proc.stderr
    assert [p.name for p in (tmp_path / "train" / "runs").iterdir()] == ["named"]
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 4
    proc = run_train([*SMALL, "run_name=other", "ckpt_path=last"], tmp_path, check=False)
    assert_one_error_line(proc, "ckpt_path=last: run_name=other has no checkpoints/last.ckpt")


def test_sigterm_exits_143_naming_the_checkpoint_and_the_resume_command(tmp_path):
    """What schedulers and `kill` send: the run saves on_exception.ckpt at the step it reached, says where and how to
    resume in one line, records the interruption in metrics.json and exits 128 + 15 (it exited 0, silently)."""
    import json
    import shlex
    import signal
    import time

    from titans.training.hydra_utils import resolve_ckpt_path

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", OMP_NUM_THREADS="1",
               TITANS_COMPILE="false")
    args = [a for a in SMALL if not a.startswith("trainer.max_steps")]
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), f"paths.log_dir={tmp_path}", *args,
                             "trainer.max_steps=100000", "logger=csv"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(tmp_path.glob("train/runs/*/checkpoints/last.ckpt")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    (saved,) = tmp_path.glob("train/runs/*/checkpoints/on_exception.ckpt")
    step = torch.load(saved, weights_only=True, map_location="cpu")["global_step"]
    last = torch.load(saved.with_name("last.ckpt"), weights_only=True, map_location="cpu")["global_step"]
    assert step >= last >= 2
    assert resolve_ckpt_path("last", tmp_path, "train", tmp_path / "new") == str(saved)

    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and lines[-1].startswith(f"interrupted by SIGTERM at step {step}: saved {saved};")
    assert sum(str(saved) in line for line in lines) == 1
    command = shlex.split(lines[-1].split("; resume with: ", 1)[1])
    assert command[:2] == [sys.executable, str(ROOT / "train.py")] and command[-1] == f"ckpt_path={saved}"
    assert command[2:-1] == [f"paths.log_dir={tmp_path}", *args, "trainer.max_steps=100000", "logger=csv"]
    metrics = json.loads((saved.parents[1] / "metrics.json").read_text())
    assert metrics["interrupted"] == "SIGTERM" and metrics["exit_status"] == 143
    assert metrics["global_step"] == step and metrics["resume_ckpt_path"] == str(saved)
    # the command resumes (here for one more step) at the step the interrupt saved
    resumed = run_train([*command[3:-1], f"trainer.max_steps={step + 1}", command[-1]], tmp_path)
    assert f"resuming from {saved}" in resumed.stdout + resumed.stderr


def test_a_full_disk_while_saving_keeps_the_previous_last_ckpt(tmp_path):
    """Checkpoints are written to a temporary file and renamed: a save that fails halfway (here from step 3 on, every
    write stops at half the bytes with ENOSPC) is one error line, leaves last.ckpt of step 2 loadable and no
    temporary file behind, and the run resumes from it."""
    full = ["+callbacks.full._target_=crash_callback.DiskFullAtStep", "+callbacks.full.step=3", "logger=csv"]
    proc = run_train([*SMALL, "task_name=full", *full], tmp_path, check=False)
    assert_one_error_line(proc, "could not write checkpoint", "(the disk is full)", "ckpt_path=last")
    (run,) = run_dirs(tmp_path, "full")
    checkpoints = run / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 2
    assert not [p for p in checkpoints.iterdir() if ".tmp" in p.name or p.name == "on_exception.ckpt"]
    proc = run_train([*SMALL, "task_name=full", "ckpt_path=last", "logger=csv"], tmp_path)
    assert f"resuming {checkpoints / 'last.ckpt'}" in proc.stdout + proc.stderr


def test_convert_checkpoint_errors_are_one_line(bad_files, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    for name in ("random.ckpt", "truncated.ckpt"):
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_checkpoint.py"), str(bad_files / name),
                               str(tmp_path / "hf")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert_one_error_line(proc, name, "not a readable checkpoint")


def _run_eval(args, tmp_path, **env_changes):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", **env_changes)
    return subprocess.run([sys.executable, str(ROOT / "eval.py"), *args, f"paths.log_dir={tmp_path}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("script, overrides, fragments", [
    ("train", ["experiment=does_not_exist"], ["experiment=does_not_exist: there is no configs/experiment/",
                                              "choices in configs/experiment/"]),
    ("train", ["experiment=mac_170"], ["closest: mac_170m,"]),
    ("train", ["model=foo"], ["model=foo: there is no configs/model/foo.yaml; closest: "]),
    ("train", ["model=macc"], ["closest: mac,"]),
    ("train", ["trainer.max_step=5"], ["trainer.max_step is not a config key: did you mean trainer.max_steps,",
                                       "+trainer.max_step="]),
    ("train", ["modle=mac"], ["modle is not a config key: did you mean model,"]),
    ("train", ["seed=abc"], ["seed='abc' is not an integer"]),
    ("train", ["trainer.max_steps=[1"], ["cannot parse the override", "[1"]),
    ("train", ["-m", "model=macc,mac"], ["closest: mac,"]),
    ("eval", ["suite=smok", "ckpt=x.ckpt"], ["suite=smok: there is no configs/suite/smok.yaml; closest: smoke,"]),
    ("eval", ["suit=smoke"], ["suit is not a config key: did you mean suite"]),
])
def test_hydra_composition_errors_are_one_line_with_the_closest_names(script, overrides, fragments, tmp_path):
    """Hydra printed 21-76 lines and exited 1 for these; seed=abc did not name the key."""
    proc = (run_train(overrides, tmp_path, check=False) if script == "train"
            else _run_eval(overrides, tmp_path))
    assert_one_error_line(proc, *fragments)
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) <= 2, proc.stderr  # + the CPU thread note


def test_full_error_brings_hydras_own_report_back(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    proc = run_train(["model=foo"], tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "Could not find 'model/foo'" in proc.stderr
