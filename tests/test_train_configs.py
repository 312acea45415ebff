"""Every config composes; every paper experiment instantiates (model on the meta device, trainer, callbacks,
loggers) and, offline, stops at the data step with the message that names the offline default."""

import math

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from titans.data.budget import smallest_subset_holding
from titans.memory import MemoryConfig
from titans.models import nominal_params
from titans.models.config import MEMORY_PRESETS
from titans.training.pipeline import train as _train  # noqa: F401  (import check)
from train_helpers import ROOT
from train_helpers import compose_train_config as _compose

CONFIGS = ROOT / "configs"
# the Table 1 pretraining runs; the BABILong fine-tuning ones are checked in tests/test_train_finetune.py
# (mqar_*: the CPU recall experiments, tests/test_data_mqar.py)
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml")
                     if not p.stem.startswith(("babilong_", "mqar_")))


def test_there_is_one_experiment_per_variant_and_paper_size():
    for variant in ("mac", "mag", "mal", "lmm", "transformer"):
        for size in ("170m", "340m", "400m", "760m"):
            assert f"{variant}_{size}" in EXPERIMENTS


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_instantiates(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    cfg = _compose(tmp_path, [f"experiment={name}"])
    assert cfg.task_name == name
    assert cfg.global_batch_tokens == 524288 and cfg.data.seq_len == 4096
    assert cfg.model.optimizer.weight_decay == 0.1 and cfg.trainer.gradient_clip_val == 1.0

    with torch.device("meta"):
        module = hydra.utils.instantiate(cfg.model, net={"vocab_size": 32000}, tokens_per_step=524288, _convert_="all")
    params = sum(p.numel() for p in module.net.parameters())
    nominal = nominal_params(cfg.model.net.size)
    assert abs(params - nominal) / nominal < 0.15, f"{name}: {params / 1e6:.0f}M parameters"

    callbacks = [hydra.utils.instantiate(c) for c in cfg.callbacks.values() if c]
    loggers = [hydra.utils.instantiate(c) for c in cfg.logger.values() if c]
    trainer = hydra.utils.instantiate(cfg.trainer, accelerator="cpu", devices=1, precision="32-true",
                                      callbacks=callbacks, logger=loggers)
    assert trainer.max_steps == -1

    from titans.data import DataUnavailableError, build_tokenizer
    from titans.training.pipeline import instantiate

    with pytest.raises(DataUnavailableError, match="data=shakespeare"):
        instantiate(cfg.data, tokenizer=build_tokenizer(kind="bytes"))


# The paper's Table 1 recipe (NeurIPS Table 5 and App. E.1; 400M: the prose's 4e-4), stated once: peak learning rate
# and training tokens per size, and what each variant adds. Every experiment must hold it.
PAPER_SIZES = {"170m": (3e-3, 15e9), "340m": (1.5e-3, 15e9), "400m": (4e-4, 15e9), "760m": (1.25e-3, 30e9),
               "1.3b": (7e-4, 100e9)}
PAPER_VARIANTS = {"mac": dict(segment_len=512, n_persistent=128), "mag": dict(window=2048, n_persistent=128),
                  "mal": dict(window=2048, n_persistent=128), "lmm": dict(n_persistent=128),
                  "transformer": dict(n_persistent=0)}


@pytest.mark.parametrize("size", PAPER_SIZES)
@pytest.mark.parametrize("variant", PAPER_VARIANTS)
def test_each_experiment_holds_the_paper_recipe(variant, size, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    name = f"{variant}_{size.replace('.', '_')}"
    cfg = _compose(tmp_path, [f"experiment={name}"])
    lr, tokens = PAPER_SIZES[size]
    assert (cfg.task_name, cfg.model.net.variant, cfg.model.net.size) == (name, variant, size)
    assert cfg.model.optimizer.lr == lr and float(cfg.train_tokens) == tokens
    assert cfg.global_batch_tokens == 2**19 and cfg.data.seq_len == 4096  # 0.5M-token batches of 4K sequences
    assert cfg.data._target_ == "titans.data.FineWebEduDataModule" and cfg.tokenizer.kind == "llama2"
    assert (cfg.model.optimizer.weight_decay, cfg.trainer.gradient_clip_val) == (0.1, 1.0)
    assert cfg.model.scheduler.warmup_steps is None and float(cfg.model.scheduler.warmup_tokens) == 1e9
    assert cfg.model.scheduler.min_lr_ratio == 0.1
    # FineWeb-Edu: the smallest subset that holds the run's tokens (whole optimizer steps) once; repeats refused
    read = math.ceil(tokens / cfg.global_batch_tokens) * cfg.global_batch_tokens
    assert cfg.data.dataset_config == smallest_subset_holding(read, cfg.data.val_fraction)
    assert cfg.data.allow_repeat is False
    # the model as built (TitansConfig's defaults included), without its weights
    config = hydra.utils.instantiate(cfg.model.net, _target_="titans.models.build_config", match_params=False,
                                     vocab_size=32000)
    for key, value in PAPER_VARIANTS[variant].items():
        assert getattr(config, key) == value, key
    if config.memory is not None:
        assert config.memory.chunk_size == 16 and config.memory.num_heads == config.n_heads


def test_every_variant_of_a_size_reads_the_same_data_and_validates_on_the_same_documents(tmp_path, monkeypatch):
    """So that their validation perplexities compare: one data config per size, one held-out split for all."""
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    data = {}
    for size in PAPER_SIZES:
        for variant in PAPER_VARIANTS:
            cfg = _compose(tmp_path, [f"experiment={variant}_{size.replace('.', '_')}"])
            data[size, variant] = OmegaConf.to_container(cfg.data, resolve=True)
    for size in PAPER_SIZES:
        assert len({str(data[size, v]) for v in PAPER_VARIANTS}) == 1, size
    split = {(d["val_fraction"], d["val_documents"], d["id_field"], d["seq_len"]) for d in data.values()}
    assert len(split) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model=mac", "size=small"],
        ["trainer=ddp"],
        ["trainer=fsdp"],
        ["trainer=gpu"],
        ["hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=2"],
        ["hparams_search=lr_sweep"],
        ["debug=overfit"],
        ["logger=none", "callbacks=none"],
    ],
)
def test_config_groups_compose(overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    cfg = _compose(tmp_path, overrides)
    assert cfg.model._target_ == "titans.training.LitCausalLM"
    if "hydra/launcher=slurm" in overrides:
        assert cfg.hydra.launcher.nodes == 2
        assert "submitit" in cfg.hydra.launcher._target_
    if "hparams_search=lr_sweep" in overrides:
        assert cfg.hydra.sweeper.params["model.optimizer.lr"] == "1e-3,3e-3,1e-2"


@pytest.mark.parametrize("variant", ["transformer", "swa", "mac", "mag", "mal", "lmm", "deltanet",
                                     "gated_deltanet", "ttt"])
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_every_variant_and_cpu_size_builds(variant, size, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    cfg = _compose(tmp_path, [f"model={variant}", f"size={size}"])
    module = hydra.utils.instantiate(cfg.model, net={"vocab_size": 4096}, _convert_="all")
    config = module.net.config
    assert config.variant == variant
    assert module.hparams["model_config"]["vocab_size"] == 4096
    if variant in MEMORY_PRESETS:  # the variant's preset, the model's heads, no compilation in the tests
        assert config.memory == MemoryConfig.preset(MEMORY_PRESETS[variant], num_heads=config.n_heads)
    else:
        assert config.memory is None


def test_one_route_from_the_config_to_the_memory(tmp_path, monkeypatch):
    """Every MemoryConfig field is in the composed config (overridable without +); Hydra builds one MemoryConfig,
    which reaches every NeuralMemory as that object, with the model's heads filled in once."""
    import dataclasses

    from hydra.errors import ConfigCompositionException

    from titans.memory import MemoryConfig, NeuralMemory

    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    cfg = _compose(tmp_path, ["model=lmm", "model.net.memory.depth=1", "model.net.memory.chunk_size=8"])
    assert set(cfg.model.net.memory) - {"_target_"} == {f.name for f in dataclasses.fields(MemoryConfig)}
    net = hydra.utils.instantiate(cfg.model.net, vocab_size=64)
    memories = [m for m in net.modules() if isinstance(m, NeuralMemory)]
    assert len(memories) == net.config.n_layers
    assert all(m.cfg is net.config.memory for m in memories)
    assert (net.config.memory.depth, net.config.memory.chunk_size) == (1, 8)
    assert net.config.memory.num_heads == net.config.n_heads
    with pytest.raises(ConfigCompositionException, match="depht"):  # a misspelt field: refused when composing
        _compose(tmp_path, ["model=lmm", "model.net.memory.depht=1"])
