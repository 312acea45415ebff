"""Unit tests of the training glue: schedule, parameter groups, accumulation, ckpt_path resolution."""

import os
import time

import pytest
import torch
from torch import nn

from titans.training.hydra_utils import resolve_ckpt_path
from titans.training.optim import cosine_with_warmup, parameter_groups
from titans.training.pipeline import gradient_accumulation


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    values = [cosine_with_warmup(s, warmup_steps=10, total_steps=110, min_lr_ratio=0.1) for s in range(111)]
    assert values[0] == pytest.approx(0.1)
    assert values[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values[:10], values[1:10]))
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[60] == pytest.approx(0.1 + 0.9 * 0.5)
    assert values[110] == pytest.approx(0.1)


def test_no_weight_decay_on_norms_biases_and_embeddings():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    decay, no_decay = parameter_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]
    assert len(no_decay["params"]) == 4  # embedding, linear bias, norm weight and bias


def test_tied_weights_are_counted_once():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    groups = parameter_groups(nn.ModuleList([emb, head]), weight_decay=0.1)
    assert sum(len(g["params"]) for g in groups) == 1


@pytest.mark.parametrize(
    "tokens,micro,seq,world,expected",
    [(None, 8, 4096, 1, 1), (524288, 8, 4096, 1, 16), (524288, 8, 4096, 4, 4), (524288, 16, 4096, 8, 1)],
)
def test_gradient_accumulation_from_global_batch_tokens(tokens, micro, seq, world, expected):
    assert gradient_accumulation(tokens, micro, seq, world) == expected


def test_ckpt_last_picks_the_newest_earlier_run(tmp_path):
    older = tmp_path / "train" / "runs" / "a" / "checkpoints" / "last.ckpt"
    newer = tmp_path / "train" / "runs" / "b" / "checkpoints" / "last.ckpt"
    current = tmp_path / "train" / "runs" / "c"
    for p in (older, newer):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
    os.utime(older, (time.time() - 100, time.time() - 100))
    (current / "checkpoints").mkdir(parents=True)
    (current / "checkpoints" / "last.ckpt").write_bytes(b"x")  # the run being started is never its own parent
    os.utime(current / "checkpoints" / "last.ckpt", (time.time() + 100, time.time() + 100))
    assert resolve_ckpt_path("last", tmp_path, "train", current) == str(newer)
    assert resolve_ckpt_path(None, tmp_path, "train", current) is None


def test_ckpt_last_prefers_a_newer_interrupt_save_and_works_without_a_periodic_one(tmp_path):
    run = tmp_path / "train" / "runs" / "a" / "checkpoints"
    run.mkdir(parents=True)
    current = tmp_path / "train" / "runs" / "b"
    interrupted = run / "on_exception.ckpt"  # Ctrl-C before the first periodic save
    interrupted.write_bytes(b"x")
    assert resolve_ckpt_path("last", tmp_path, "train", current) == str(interrupted)
    periodic = run / "last.ckpt"  # step 15, then Ctrl-C at step 17 writes on_exception.ckpt
    periodic.write_bytes(b"x")
    os.utime(periodic, (time.time() - 50, time.time() - 50))
    assert resolve_ckpt_path("last", tmp_path, "train", current) == str(interrupted)
    os.utime(interrupted, (time.time() - 100, time.time() - 100))  # resumed and saved again since
    assert resolve_ckpt_path("last", tmp_path, "train", current) == str(periodic)


def test_ckpt_path_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path=last found no"):
        resolve_ckpt_path("last", tmp_path, "train", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), tmp_path, "train", tmp_path / "x")


def test_fsdp_policy_wraps_each_block():
    from titans.models import build_causal_lm
    from titans.models.block import Block
    from titans.training.fsdp import block_wrap_policy

    model = build_causal_lm("mac", "tiny", vocab_size=64, segment_len=16, n_persistent=2)
    policy = block_wrap_policy()
    wrapped = [m for m in model.modules() if type(m) in policy._module_classes]
    assert len(wrapped) == model.config.n_layers and all(isinstance(m, Block) for m in wrapped)


# ---------------------------------------------------------------------------------------------- CPU threads
from titans.cpu_threads import choose_cpu_threads  # noqa: E402


@pytest.mark.parametrize("cores, load, env, threads, policy", [
    (2, 0.05, {}, 2, None),              # idle: every core, OpenMP's default (spinning is fastest alone)
    (2, 2.1, {}, 1, None),               # two busy processes on 2 cores: one thread, nothing to spin against
    (16, 4.0, {}, 12, "PASSIVE"),        # shared big machine: the free cores, waiting threads sleep
    (8, 20.0, {}, 1, None),              # overloaded: never zero threads
    (2, None, {}, 2, None),              # load unknown (no getloadavg): torch's default
    (2, 2.0, {"OMP_NUM_THREADS": "2"}, 2, None),                            # the user's choice wins
    (16, 4.0, {"OMP_WAIT_POLICY": "ACTIVE"}, 12, "ACTIVE"),
])
def test_cpu_threads_follow_the_free_cores(cores, load, env, threads, policy):
    choice = choose_cpu_threads(cores, load, env)
    assert (choice.threads, choice.wait_policy) == (threads, policy)
    assert choice.describe().startswith(f"[titans] CPU threads: {threads} ")


def test_cpu_time_limit_stops_after_the_budget_of_cpu_time_not_wall_time(monkeypatch):
    from types import SimpleNamespace

    from titans.training import callbacks

    clock = {"cpu": 100.0}
    monkeypatch.setattr(callbacks.time, "process_time", lambda: clock["cpu"])
    limit, trainer = callbacks.CPUTimeLimit(minutes=0.5), SimpleNamespace(should_stop=False)
    limit.on_train_start(trainer, None)
    clock["cpu"] += 29.0  # however long the wall clock says this took
    limit.on_train_batch_end(trainer)
    assert not trainer.should_stop and limit.used() == pytest.approx(29.0)
    clock["cpu"] += 1.0
    limit.on_train_batch_end(trainer)
    assert trainer.should_stop
    with pytest.raises(ValueError, match="minutes must be > 0"):
        callbacks.CPUTimeLimit(minutes=0)
