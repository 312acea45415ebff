"""Expected errors of train.py and eval.py: exit status 2, one `error: ...` line, no traceback."""

import os
import random
import subprocess
import sys

import pytest
import torch

from train_helpers import ROOT, SMALL, assert_one_error_line, run_train


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
    return root


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
])
def test_train_py_expected_errors_are_one_line(overrides, fragments, bad_files, tmp_path):
    overrides = [o.format(tmp=tmp_path, bad=bad_files) for o in overrides]
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


def test_resuming_with_another_model_config_is_refused_naming_the_difference(small_run, tmp_path):
    proc = run_train([*SMALL, f"ckpt_path={small_run}", "model.net.segment_len=32", "trainer.max_steps=6"], tmp_path,
                     check=False)
    assert_one_error_line(proc, "segment_len", "allow_config_change=true")
    # runtime options (the training length, the memory implementation) are not the model: resuming goes on
    run_train([*SMALL, f"ckpt_path={small_run}", "data.seq_len=32", "model.net.memory.impl=autograd",
               "trainer.max_steps=5", "trainer.val_check_interval=5"], tmp_path)
    # the explicit switch lets a changed update rule continue
    proc = run_train([*SMALL, f"ckpt_path={small_run}", "model.net.memory.max_lr=0.2", "trainer.max_steps=5",
                      "trainer.val_check_interval=5"], tmp_path, check=False)
    assert_one_error_line(proc, "max_lr")
    run_train([*SMALL, f"ckpt_path={small_run}", "model.net.memory.max_lr=0.2", "allow_config_change=true",
               "trainer.max_steps=5", "trainer.val_check_interval=5"], tmp_path)


def test_sigterm_saves_a_resumable_checkpoint_that_ckpt_path_last_picks(tmp_path):
    """What schedulers and `kill` send: the run saves on_exception.ckpt at the step it reached."""
    import signal
    import time

    from titans.training.hydra_utils import resolve_ckpt_path

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", OMP_NUM_THREADS="1",
               TITANS_COMPILE="false")
    args = [a for a in SMALL if not a.startswith("trainer.max_steps")]
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), f"paths.log_dir={tmp_path}", *args,
                             "trainer.max_steps=100000", "logger=csv"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(tmp_path.glob("train/runs/*/checkpoints/last.ckpt")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    (saved,) = tmp_path.glob("train/runs/*/checkpoints/on_exception.ckpt")
    step = torch.load(saved, weights_only=True, map_location="cpu")["global_step"]
    last = torch.load(saved.with_name("last.ckpt"), weights_only=True, map_location="cpu")["global_step"]
    assert step >= last >= 2
    assert resolve_ckpt_path("last", tmp_path, "train", tmp_path / "new") == str(saved)


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
