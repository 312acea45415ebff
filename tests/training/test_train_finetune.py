"""BABILong fine-tuning through train.py: answer-only loss (training and validation), init_from (weights only, clear
errors), and the fine-tuning experiment configs."""

import csv
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from numerics import assert_within_reference_error, float64_copy
from train_helpers import ROOT, assert_one_error_line, run_dirs, run_train
from train_helpers import compose_train_config as _compose

CONFIGS = ROOT / "configs"
TASK = "babilong_finetune_tiny_offline"
# A few steps of the tiny offline fine-tuning experiment on short stories: seconds on a CPU.
FINETUNE_SMALL = [
    f"experiment={TASK}",
    "data.tasks=[qa1,qa2]",
    "data.lengths=[0,128]",
    "data.seq_len=300",
    "data.batch_size=2",
    "data.val_samples=2",
    "data.val_batches=2",
    "trainer.max_steps=3",
    "trainer.val_check_interval=3",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "callbacks.model_checkpoint.every_n_train_steps=3",
    "callbacks.progress_bar.refresh_rate=0",
    "logger=csv",
]


def _metrics(run_dir: Path) -> list[dict]:
    rows = []
    for path in run_dir.glob("csv/version_*/metrics.csv"):
        with path.open() as f:
            rows += list(csv.DictReader(f))
    return rows


def _tokenizer(cfg):
    from titans.data import build_tokenizer

    return build_tokenizer(**{k: v for k, v in OmegaConf.to_container(cfg.tokenizer, resolve=True).items()
                              if k != "_target_"})


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("logs")
    run_train(FINETUNE_SMALL, log_dir)
    return run_dirs(log_dir, TASK)[0]


# ---------------------------------------------------------------------------------------------------- runs
@pytest.mark.numerics
def test_tiny_offline_finetune_runs_and_its_loss_is_the_answer_loss(finetune_run):
    import torch.nn.functional as F

    from titans.training import LitCausalLM

    ckpt = finetune_run / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["global_step"] == 3
    rows = _metrics(finetune_run)
    train_losses = {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
    assert sorted(train_losses) == [0, 1, 2] and all(0 < v < 20 for v in train_losses.values())
    (logged_val,) = [float(r["val/loss"]) for r in rows if r.get("val/loss")]

    # Recompute the validation loss from the checkpoint: cross-entropy of the answer tokens (+ EOS) only.
    cfg = OmegaConf.load(finetune_run / ".hydra" / "config.yaml")
    datamodule = hydra.utils.instantiate(cfg.data, tokenizer=_tokenizer(cfg))
    lit = LitCausalLM.load_from_checkpoint(ckpt, map_location="cpu").eval()
    net64 = float64_copy(lit.net)
    answer_sum, answer_sum64, answer_count, lm_sum, lm_count = 0.0, 0.0, 0, 0.0, 0
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            logits = lit(batch["input_ids"])[:, :-1].reshape(-1, lit.net.config.vocab_size)
            logits64 = net64(input_ids=batch["input_ids"]).logits[:, :-1].reshape(-1, lit.net.config.vocab_size)
            targets = batch["labels"][:, 1:].reshape(-1)
            answer_sum += F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum").item()
            answer_sum64 += F.cross_entropy(logits64, targets, ignore_index=-100, reduction="sum").item()
            answer_count += int((targets != -100).sum())
            lm_sum += F.cross_entropy(logits, batch["input_ids"][:, 1:].reshape(-1), reduction="sum").item()
            lm_count += targets.numel()
    assert 0 < answer_count < lm_count / 10  # a few answer tokens per sample, long prompts
    # within 8x the error of the float32 recomputation against the float64 model's (tests/numerics.py)
    assert_within_reference_error(logged_val, answer_sum64 / answer_count, answer_sum / answer_count)
    assert abs(logged_val - lm_sum / lm_count) > 0.05  # not the language-model loss over the whole sequence


def test_init_from_starts_from_the_checkpoint_weights_with_a_fresh_optimizer(finetune_run, tmp_path):
    source = finetune_run / "checkpoints" / "last.ckpt"
    # learning rate 0: the one training step leaves the weights as loaded
    proc = run_train([*FINETUNE_SMALL, "task_name=from_init", f"init_from={source}", "model.optimizer.lr=0",
                      "trainer.max_steps=1", "trainer.val_check_interval=1",
                      "callbacks.model_checkpoint.every_n_train_steps=1"], tmp_path)
    assert "initialised the model's weights from" in proc.stdout + proc.stderr
    (run,) = run_dirs(tmp_path, "from_init")
    loaded = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    original = torch.load(source, weights_only=False)
    assert loaded["global_step"] == 1  # weights only: not a resume at step 3
    assert loaded["state_dict"].keys() == original["state_dict"].keys()
    for name, value in original["state_dict"].items():
        assert torch.equal(loaded["state_dict"][name], value), name


def test_a_missing_init_from_file_stops_train_py_with_one_clear_line(tmp_path):
    proc = run_train([*FINETUNE_SMALL, f"init_from={tmp_path / 'nope.ckpt'}"], tmp_path, check=False)
    assert_one_error_line(proc)
    assert f"init_from={tmp_path / 'nope.ckpt'} does not exist: give a .ckpt written by train.py" in proc.stderr


# ---------------------------------------------------------------------------------------------------- loss
def test_loss_uses_the_batch_labels_and_validation_counts_supervised_targets(tol_seed):
    """The losses within 8x the error of F.cross_entropy on the float32 logits against the float64 model's
    (tests/numerics.py)."""
    import torch.nn.functional as F

    from titans.models import build_causal_lm
    from titans.training import LitCausalLM

    torch.manual_seed(tol_seed)
    net = build_causal_lm("mac", "tiny", vocab_size=64, segment_len=16, n_persistent=4)
    lit = LitCausalLM(net=net, optimizer={"lr": 1e-3}, scheduler={"warmup_steps": 0}).eval()
    input_ids = torch.randint(0, 64, (2, 24))
    labels = torch.full_like(input_ids, -100)
    labels[0, 20:23] = input_ids[0, 20:23]
    labels[1, 17:19] = input_ids[1, 17:19]
    with torch.no_grad():
        logits, logits64 = lit(input_ids), float64_copy(net)(input_ids=input_ids).logits

        def losses(logits):
            return (F.cross_entropy(logits[:, :-1].reshape(-1, 64), labels[:, 1:].reshape(-1), ignore_index=-100),
                    F.cross_entropy(logits[:, :-1].reshape(-1, 64), input_ids[:, 1:].reshape(-1)))

        (answer, lm), (answer64, lm64) = losses(logits), losses(logits64)
        assert_within_reference_error(lit._loss({"input_ids": input_ids, "labels": labels}), answer64, answer,
                                      what="answer loss")
        assert_within_reference_error(lit._loss({"input_ids": input_ids}), lm64, lm, what="LM loss")  # as before

        hits = (logits[:, :-1].argmax(-1) == labels[:, 1:])[labels[:, 1:] != -100].float().mean()
        for metric in (lit.val_loss, lit.val_acc, lit.val_targets):
            metric.reset()
        lit.validation_step({"input_ids": input_ids, "labels": labels}, 0)
        assert lit.val_targets.compute() == 5
        assert_within_reference_error(lit.val_loss.compute(), answer64, answer, what="validation answer loss")
        assert lit.val_acc.compute() == hits  # k / 5, correctly rounded either way
        lit.validation_step({"input_ids": input_ids}, 0)  # 46 more targets, averaged with the first 5
        assert lit.val_targets.compute() == 5 + 2 * 23
        assert_within_reference_error(lit.val_loss.compute(), (answer64 * 5 + lm64 * 46) / 51,
                                      (answer * 5 + lm * 46) / 51, what="validation mean")
        assert lit.validation_step({"input_ids": input_ids, "labels": torch.full_like(labels, -100)}, 0) is None
        assert lit.val_targets.compute() == 51  # a batch with nothing to score adds nothing (no NaN)


# ---------------------------------------------------------------------------------------------------- init_from
def _tiny_lit(tmp_path, overrides=()):
    cfg = _compose(tmp_path, [f"experiment={TASK}", *overrides])
    tokenizer = _tokenizer(cfg)
    lit = hydra.utils.instantiate(cfg.model, net={"vocab_size": len(tokenizer)}, _convert_="all")
    return lit, tokenizer


def test_init_from_loads_parameters_equal_to_the_checkpoint_s(finetune_run, tmp_path, monkeypatch):
    from titans.training.checkpoint import load_pretrained_weights

    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    lit, tokenizer = _tiny_lit(tmp_path, ["data.seq_len=1024"])  # another training length: same weights
    ckpt = finetune_run / "checkpoints" / "last.ckpt"
    state = {k[len("net."):]: v for k, v in torch.load(ckpt, weights_only=False)["state_dict"].items()}
    assert any(not torch.equal(p, state[n]) for n, p in lit.net.state_dict().items())  # fresh weights differ
    load_pretrained_weights(lit.net, ckpt, tokenizer)
    for name, value in lit.net.state_dict().items():
        assert torch.equal(value, state[name]), name

    # a Hugging Face directory works the same way
    hf_dir = tmp_path / "hf"
    lit.net.save_pretrained(hf_dir)
    fresh, _ = _tiny_lit(tmp_path)
    load_pretrained_weights(fresh.net, hf_dir)
    for name, value in fresh.net.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_init_from_errors_are_clear(finetune_run, tmp_path, monkeypatch):
    from titans.data import build_tokenizer
    from titans.training.checkpoint import load_pretrained_weights
    from titans.training.pipeline import init_from_path

    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    ckpt = finetune_run / "checkpoints" / "last.ckpt"
    lit, tokenizer = _tiny_lit(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist: give a .ckpt written by train.py"):
        load_pretrained_weights(lit.net, tmp_path / "missing.ckpt")
    cfg = _compose(tmp_path, [f"experiment={TASK}", f"init_from={tmp_path / 'missing.ckpt'}"])
    with pytest.raises(FileNotFoundError, match="missing.ckpt does not exist"):
        init_from_path(cfg)
    assert init_from_path(_compose(tmp_path, [f"experiment={TASK}"])) is None

    other, _ = _tiny_lit(tmp_path, ["model=transformer"])
    with pytest.raises(ValueError, match="holds a mac model that does not fit this run's transformer"):
        load_pretrained_weights(other.net, ckpt, tokenizer)
    with pytest.raises(ValueError, match="gives other ids than this run's"):
        load_pretrained_weights(lit.net, ckpt, build_tokenizer(kind="bytes"))


# ---------------------------------------------------------------------------------------------------- configs
def test_paper_finetune_experiment_composes_and_fits_the_table1_pretraining_run(tmp_path, monkeypatch):
    from titans.data import DataUnavailableError
    from titans.training.pipeline import init_from_path, instantiate

    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = _compose(tmp_path, ["experiment=babilong_finetune_mac_170m"])
    pretrain = _compose(tmp_path, ["experiment=mac_170m"])
    assert cfg.task_name == "babilong_finetune_mac_170m"
    assert cfg.data._target_ == "titans.data.BabilongDataModule" and cfg.data.source == "hub"
    assert list(cfg.data.tasks) == ["qa1", "qa2", "qa3", "qa4", "qa5"]
    assert cfg.data.dataset == "RMT-team/babilong-train-5k-samples"
    # the model and tokenizer of experiment=mac_170m, so that its checkpoint is the init_from
    assert cfg.tokenizer == pretrain.tokenizer
    net, pretrain_net = OmegaConf.to_container(cfg.model.net), OmegaConf.to_container(pretrain.model.net)
    net.pop("max_position_embeddings"), pretrain_net.pop("max_position_embeddings")
    assert net == pretrain_net

    with torch.device("meta"):
        module = hydra.utils.instantiate(cfg.model, net={"vocab_size": 32000}, _convert_="all")
    assert abs(sum(p.numel() for p in module.net.parameters()) - 170e6) / 170e6 < 0.15

    with pytest.raises(ValueError, match="fine-tunes a pretrained model: give init_from=PATH"):
        init_from_path(cfg)
    with open_dict(cfg):
        cfg.ckpt_path = "last"  # resuming the fine-tuning run: its checkpoint holds the weights
    assert init_from_path(cfg) is None
    from titans.data import build_tokenizer

    with pytest.raises(DataUnavailableError, match="data=babilong_offline"):
        instantiate(cfg.data, tokenizer=build_tokenizer(kind="bytes"))


def test_tiny_finetune_experiment_fits_the_default_run_s_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    cfg = _compose(tmp_path, [f"experiment={TASK}"])
    default = _compose(tmp_path, [])
    assert cfg.data.source == "offline" and cfg.trainer.accelerator == "cpu"
    assert cfg.data.generator_seed != 0  # suite=babilong_offline evaluates generator seed 0
    assert cfg.tokenizer == default.tokenizer
    net, default_net = OmegaConf.to_container(cfg.model.net), OmegaConf.to_container(default.model.net)
    net.pop("max_position_embeddings"), default_net.pop("max_position_embeddings")
    assert net == default_net
    datamodule = hydra.utils.instantiate(cfg.data, tokenizer=_tokenizer(cfg))
    datamodule.setup("fit")
    assert len(datamodule.train_set) == 3 * 2 * cfg.data.train_samples
