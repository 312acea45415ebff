"""End-to-end runs of ``train.py``: fast_dev_run, checkpoints and wandb, multirun, resume, DDP, bad input."""

import csv
from pathlib import Path

import pytest

from train_helpers import SMALL, assert_one_error_line, run_dirs, run_train


def _train_losses(run_dir: Path) -> dict[int, float]:
    """step -> train/loss from the CSV logger."""
    losses = {}
    for metrics in run_dir.glob("csv/version_*/metrics.csv"):
        with metrics.open() as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    losses[int(row["step"])] = float(row["train/loss"])
    return losses


def test_fast_dev_run_of_the_default(tmp_path):
    proc = run_train(["debug=fdr"], tmp_path)
    assert "Running in `fast_dev_run` mode" in proc.stdout + proc.stderr


def test_default_run_writes_checkpoints_metrics_and_an_offline_wandb_run(tmp_path):
    run_train(SMALL, tmp_path)
    (run,) = run_dirs(tmp_path)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "wandb").glob("offline-run-*")), "no offline wandb run directory"
    assert (run / ".hydra" / "config.yaml").is_file()
    header = next(iter(run.glob("csv/version_*/metrics.csv"))).read_text().splitlines()[0]
    for key in ("train/loss", "train/lr", "val/loss", "val/ppl", "train/tokens_per_sec", "train/grad_norm"):
        assert key in header


def test_two_job_multirun_gets_two_directories_and_two_wandb_runs(tmp_path):
    run_train(["-m", "model.optimizer.lr=1e-3,3e-3", *SMALL, "trainer.max_steps=2"], tmp_path)
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    wandb_runs = {w.name for j in jobs for w in (j / "wandb").glob("offline-run-*")}
    assert len(wandb_runs) == 2
    lrs = {(j / ".hydra" / "overrides.yaml").read_text().split("model.optimizer.lr=")[1].split()[0] for j in jobs}
    assert lrs == {"0.001", "0.003"}


def test_runs_started_in_the_same_second_do_not_collide(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: run_train(["debug=fdr", "task_name=same_second"], tmp_path), range(2)))
    runs = run_dirs(tmp_path, "same_second")
    assert len(runs) == 2, runs
    assert all((r / ".hydra" / "config.yaml").is_file() for r in runs)


@pytest.mark.slow
def test_resume_gives_the_same_next_step_loss_as_the_uninterrupted_run(tmp_path):
    common = [*SMALL, "logger=csv", "callbacks.model_checkpoint.every_n_train_steps=1", "trainer.max_steps=4",
              "model.scheduler.warmup_steps=1", "trainer.val_check_interval=100"]
    run_train([*common, "task_name=whole"], tmp_path)
    whole = _train_losses(run_dirs(tmp_path, "whole")[0])
    assert sorted(whole) == [0, 1, 2, 3]

    # Stop after 2 of the 4 steps (max_steps and so the LR schedule unchanged), then resume.
    stop = ["+callbacks.stop._target_=titans.training.callbacks.StopAtStep", "+callbacks.stop.step=2"]
    run_train([*common, "task_name=split", *stop], tmp_path)
    assert sorted(_train_losses(run_dirs(tmp_path, "split")[0])) == [0, 1]
    run_train([*common, "task_name=split", "ckpt_path=last"], tmp_path)
    resumed = _train_losses(run_dirs(tmp_path, "split")[1])
    assert sorted(resumed) == [2, 3], f"resumed run did not continue at step 2: {sorted(resumed)}"
    # both runs: one thread (run_train sets OMP_NUM_THREADS=1), the same ops on the same restored bits, so the
    # resumed losses are the uninterrupted run's exactly; any difference is a resume bug, not rounding
    for step in resumed:
        assert resumed[step] == whole[step], (step, resumed, whole)


def test_a_crash_keeps_the_last_good_checkpoint_and_the_run_resumes(tmp_path):
    import torch

    crash = ["+callbacks.crash._target_=crash_callback.CrashAtStep", "+callbacks.crash.step=3", "logger=csv"]
    proc = run_train([*SMALL, "task_name=crash", *crash], tmp_path, check=False)
    assert proc.returncode != 0 and "simulated crash at step 3" in proc.stderr
    ckpts = run_dirs(tmp_path, "crash")[0] / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["global_step"] == 2
    # the interrupt save holds the three completed steps; ckpt_path=last takes it (the newest state)
    assert torch.load(ckpts / "on_exception.ckpt", weights_only=True)["global_step"] == 3
    run_train([*SMALL, "task_name=crash", "ckpt_path=last", "logger=csv"], tmp_path)
    resumed = _train_losses(run_dirs(tmp_path, "crash")[1])
    assert sorted(resumed) == [3]


def _val_steps(run_dir: Path) -> list[int]:
    steps = set()
    for metrics in run_dir.glob("csv/version_*/metrics.csv"):
        with metrics.open() as f:
            steps |= {int(row["step"]) for row in csv.DictReader(f) if row.get("val/loss")}
    return sorted(steps)


def test_resuming_an_interrupt_save_keeps_the_validation_schedule(tmp_path):
    every3 = [a for a in SMALL if not a.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    every3 += ["trainer.max_steps=12", "trainer.val_check_interval=3", "logger=csv"]
    run_train([*every3, "task_name=plain"], tmp_path)
    crash = ["+callbacks.crash._target_=crash_callback.CrashAtStep", "+callbacks.crash.step=7"]
    run_train([*every3, "task_name=crash", *crash], tmp_path, check=False)
    run_train([*every3, "task_name=crash", "ckpt_path=last"], tmp_path)
    plain = _val_steps(run_dirs(tmp_path, "plain")[0])
    first, resumed = (_val_steps(d) for d in run_dirs(tmp_path, "crash"))
    assert plain == [2, 5, 8, 11] and first + resumed == plain


@pytest.mark.slow
def test_two_process_cpu_ddp(tmp_path):
    proc = run_train([*SMALL, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                      "trainer.precision=32-true", "logger=csv", "trainer.max_steps=2"], tmp_path)
    out = proc.stdout + proc.stderr
    assert "distributed_backend=gloo" in out and "All distributed processes registered" in out
    (run,) = run_dirs(tmp_path)
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_unknown_config_option_names_the_closest_valid_choices(tmp_path):
    proc = run_train(["model=transfomer"], tmp_path, check=False)
    assert_one_error_line(proc, "model=transfomer: there is no configs/model/transfomer.yaml; closest: transformer,")


def test_vocabulary_mismatch_is_one_clear_line(tmp_path):
    proc = run_train([*SMALL, "+model.net.vocab_size=10"], tmp_path, check=False)
    assert_one_error_line(proc, "but the model has vocab_size=10: set the model's vocab_size >= 4096")


def test_missing_data_file_is_one_clear_line(tmp_path):
    proc = run_train([*SMALL, f"data.data_dir={tmp_path / 'nowhere'}"], tmp_path, check=False)
    assert_one_error_line(proc, "nowhere")


def test_unreachable_hub_names_the_offline_default(tmp_path):
    proc = run_train([*SMALL, "data=fineweb_edu", "tokenizer=bytes"], tmp_path, check=False)
    assert_one_error_line(proc, "data=shakespeare")
