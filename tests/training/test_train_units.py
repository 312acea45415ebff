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


def _config(root, **data):
    """A resolved run config as train() stores it in checkpoints, its paths under ``root``."""
    root = str(root)
    return {"task_name": "train", "seed": 1, "run_name": None, "ckpt_path": None,
            "paths": {"root_dir": root, "data_dir": f"{root}/data", "log_dir": f"{root}/logs",
                      "output_dir": f"{root}/logs/train/runs/x"},
            "data": {"_target_": "titans.data.TextDataModule", "data_dir": f"{root}/data/shakespeare",
                     "seq_len": 64, "batch_size": 2, **data},
            "trainer": {"max_steps": 10, "devices": 1, "precision": "32-true",
                        "default_root_dir": f"{root}/logs/train/runs/x"},
            "logger": {"csv": {"save_dir": f"{root}/logs/train/runs/x"}}}


def _checkpoint(path, config, age: float = 0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": 1, "titans_run_config": config}, path)
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_ckpt_last_picks_the_newest_earlier_run_with_this_config(tmp_path):
    ours = _config(tmp_path)
    runs = tmp_path / "train" / "runs"
    older = _checkpoint(runs / "a" / "checkpoints" / "last.ckpt", ours, age=100)
    newer = _checkpoint(runs / "b" / "checkpoints" / "last.ckpt", ours, age=50)
    current = runs / "c"
    assert resolve_ckpt_path("last", tmp_path, "train", current, run_config=ours) == str(newer)
    assert resolve_ckpt_path(None, tmp_path, "train", current, run_config=ours) is None
    # another experiment of the same task_name, saved even later, is never taken
    _checkpoint(runs / "other" / "checkpoints" / "last.ckpt", _config(tmp_path, seq_len=128), age=1)
    _checkpoint(runs / "old_layout" / "checkpoints" / "last.ckpt", None, age=0)
    assert resolve_ckpt_path("last", tmp_path, "train", current, run_config=ours) == str(newer)
    newer.unlink()
    older.unlink()
    with pytest.raises(FileNotFoundError, match=r"none of a run with this config \(.*data.seq_len 128 -> 64"):
        resolve_ckpt_path("last", tmp_path, "train", current, run_config=ours)


def test_run_time_keys_and_moved_checkouts_do_not_make_another_run(tmp_path):
    from titans.training.checkpoint import run_config_differences

    ours = _config(tmp_path / "checkout")
    moved = _config(tmp_path / "elsewhere")  # the same run, its repository (and so every path) moved
    moved["trainer"].update(max_steps=20, devices=2)
    moved.update(ckpt_path="last", run_name="again")
    moved["logger"] = {"wandb": {"project": "p"}}
    assert run_config_differences(moved, ours) == ""
    changed = _config(tmp_path / "checkout", batch_size=4)
    changed["trainer"]["precision"] = "bf16-mixed"
    changed["seed"] = 2
    assert run_config_differences(changed, ours) == ("data.batch_size 4 -> 2, seed 2 -> 1, "
                                                     "trainer.precision 'bf16-mixed' -> '32-true'")


def test_ckpt_last_takes_this_runs_own_directory_first(tmp_path):
    """A run started again with the same run_name (or hydra.run.dir) continues from its own checkpoints."""
    ours = _config(tmp_path)
    runs = tmp_path / "train" / "runs"
    _checkpoint(runs / "b" / "checkpoints" / "last.ckpt", ours, age=0)
    own = _checkpoint(runs / "named" / "checkpoints" / "last.ckpt", ours, age=100)
    assert resolve_ckpt_path("last", tmp_path, "train", runs / "named", run_config=ours, run_name="named") == str(own)
    with pytest.raises(FileNotFoundError, match="run_name=fresh has no checkpoints/last.ckpt"):
        resolve_ckpt_path("last", tmp_path, "train", runs / "fresh", run_config=ours, run_name="fresh")


def test_ckpt_last_prefers_a_newer_interrupt_save_and_works_without_a_periodic_one(tmp_path):
    ours = _config(tmp_path)
    run = tmp_path / "train" / "runs" / "a" / "checkpoints"
    current = tmp_path / "train" / "runs" / "b"
    interrupted = _checkpoint(run / "on_exception.ckpt", ours)  # Ctrl-C before the first periodic save
    assert resolve_ckpt_path("last", tmp_path, "train", current, run_config=ours) == str(interrupted)
    periodic = _checkpoint(run / "last.ckpt", ours, age=50)  # step 15, then Ctrl-C at step 17 writes on_exception
    assert resolve_ckpt_path("last", tmp_path, "train", current, run_config=ours) == str(interrupted)
    os.utime(interrupted, (time.time() - 100, time.time() - 100))  # resumed and saved again since
    assert resolve_ckpt_path("last", tmp_path, "train", current, run_config=ours) == str(periodic)


def test_ckpt_path_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path=last found no earlier run of task_name=train"):
        resolve_ckpt_path("last", tmp_path, "train", tmp_path / "x", run_config=_config(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), tmp_path, "train", tmp_path / "x")


def _lightning_checkpoint():
    return {"state_dict": {"w": torch.arange(1000.0)}, "global_step": 7}


def test_a_save_that_fails_halfway_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    """A crash or a full disk during torch.save: last.ckpt stays the previous, complete file; no temporary file is
    left; the error is a CheckpointWriteError naming the file."""
    import errno

    import titans.training.checkpoint as checkpoint_module
    from titans.errors import CheckpointWriteError
    from titans.training.checkpoint import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint(_lightning_checkpoint(), path)
    before = path.read_bytes()

    def write_half_then_fail(obj, f, *args, **kwargs):
        f.write(before[: len(before) // 2])  # partial output, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", write_half_then_fail)
    with pytest.raises(CheckpointWriteError, match=rf"could not write checkpoint {path} \(the disk is full\)"):
        io.save_checkpoint({**_lightning_checkpoint(), "global_step": 8}, path)
    assert path.read_bytes() == before and torch.load(path, weights_only=True)["global_step"] == 7
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]

    def crash(obj, f, *args, **kwargs):  # a crash (not an OSError) mid-write: re-raised as it is
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint(_lightning_checkpoint(), path)
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_train_writes_checkpoints_through_the_atomic_writer(tmp_path):
    """Lightning's trainer built by train() saves through AtomicCheckpointIO (temporary file + os.replace)."""
    from train_helpers import compose_train_config

    from titans.training.checkpoint import AtomicCheckpointIO

    cfg = compose_train_config(tmp_path, ["trainer.max_steps=1", "logger=none"])
    import hydra

    from titans.training.pipeline import _callbacks_the_trainer_allows

    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=_callbacks_the_trainer_allows([], cfg.trainer),
                                      plugins=[AtomicCheckpointIO()], logger=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


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


def test_a_resume_compares_the_segment_length_only_of_a_model_with_mac_blocks():
    """segment_len is read by MAC blocks only: a Transformer or LMM checkpoint that recorded TitansConfig's earlier
    default (512) resumes under the current one, a MAC checkpoint with another segment length does not."""
    from titans.models import TitansConfig
    from titans.training.checkpoint import _comparable

    for variant, compared in [("transformer", False), ("lmm", False), ("mal", False), ("mac", True)]:
        old, new = (TitansConfig(variant=variant, d_model=32, n_heads=2, n_layers=2, segment_len=s).to_dict()
                    for s in (512, 128))
        assert (_comparable(old) != _comparable(new)) is compared, variant
