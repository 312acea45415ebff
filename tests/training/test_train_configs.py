"""Every config composes; every paper experiment instantiates (model on the meta device, trainer, callbacks,
loggers) and, offline, stops at the data step with the message that names the offline default.

Which checks an experiment gets follows from what it declares, the recipes its defaults list composes
(tests/recipes.py), never from its file name: every experiment that composes ``/recipe/table1`` is held to the
Table 1 recipe here, whatever it is called."""

import math
import shutil
from collections import Counter
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from recipes import TABLE1_CHANGES, TABLE1_PARTS, Declaration, composing, declarations, keys_set_by, table1_rows
from titans.data.budget import smallest_subset_holding
from titans.memory import MemoryConfig
from titans.models import nominal_params
from titans.models.config import MEMORY_PRESETS
from titans.training.pipeline import train as _train  # noqa: F401  (import check)
from train_helpers import ROOT
from train_helpers import compose_train_config as _compose

CONFIGS = ROOT / "configs"
# the experiments that compose the Table 1 recipe: its rows, and its rows with one declared change (Table 5's
# ablations, Figure 7's memory depths: tests/training/test_paper_experiments.py compares those with their row)
TABLE1 = sorted(composing("table1"))
# The experiments of the other recipes are checked where their task is: recipe/forecasting in
# tests/tasks/test_timeseries.py, recipe/genomics in tests/tasks/test_genomics.py. Those that compose no recipe are
# checked by name in the test file named here.
CHECKED_BY_RECIPE = {"table1": "test_train_configs.py", "forecasting": "test_timeseries.py",
                     "genomics": "test_genomics.py"}
CHECKED_BY_NAME = {"babilong_finetune_mac_170m": "test_train_finetune.py",
                   "babilong_finetune_tiny_offline": "test_train_finetune.py",
                   "mqar_gap": "test_data_mqar.py", "dna_pretrain_lmm": "test_genomics.py",
                   "dna_pretrain_smoke": "test_genomics.py"}

# The paper's Table 1 recipe (NeurIPS Table 5 and App. E.1; 400M: the prose's 4e-4), stated once: peak learning rate
# and training tokens per size, and what each variant adds. Every experiment that declares it must hold it.
PAPER_SIZES = {"170m": (3e-3, 15e9), "340m": (1.5e-3, 15e9), "400m": (4e-4, 15e9), "760m": (1.25e-3, 30e9),
               "1.3b": (7e-4, 100e9)}
PAPER_VARIANTS = {"mac": dict(segment_len=512, n_persistent=128), "mag": dict(window=2048, n_persistent=128),
                  "mal": dict(window=2048, n_persistent=128), "lmm": dict(n_persistent=128),
                  "transformer": dict(n_persistent=0)}


def _test_file(name: str) -> Path:
    """A test module of tests/ (in whichever folder) by its file name."""
    [path] = (ROOT / "tests").rglob(name)
    return path


def test_reading_the_declarations_agrees_with_hydra():
    """tests/recipes.py reads the defaults lists from the files; Hydra's own defaults tree composes the same recipes
    and selects the same config groups, for every experiment."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        for name, declared in declarations().items():
            tree = loader.compute_defaults_list(config_name="train.yaml", overrides=[f"experiment={name}"],
                                                run_mode=RunMode.RUN)
            recipes = {d.config_path.removeprefix("recipe/") for d in tree.defaults
                       if d.config_path.startswith("recipe/")}
            assert recipes == {f"{g}/{c}" if c else g for g, c in declared.recipes.items()}, name
            choices = tree.overrides.known_choices
            assert {g: choices[g] for g in declared.selects} == declared.selects, name


def test_every_experiment_declares_what_it_is_checked_against():
    """An experiment composes a recipe whose checks the tests run, or is named by the test that checks it; one that
    composes the Table 1 recipe composes all of it (a variant and a size) and at most one declared change."""
    for name, declared in declarations().items():
        checked_by = {CHECKED_BY_RECIPE[r] for r in declared.recipes if r in CHECKED_BY_RECIPE}
        if name in CHECKED_BY_NAME:
            assert name in _test_file(CHECKED_BY_NAME[name]).read_text(), name
            checked_by.add(CHECKED_BY_NAME[name])
        assert len(checked_by) == 1, (f"{name}: composes {sorted(declared.recipes)}, checked by {sorted(checked_by)};"
                                      f" compose one of {sorted(CHECKED_BY_RECIPE)}, or check it by name")
        if declared.composes("table1"):
            extra = set(declared.recipes) - TABLE1_PARTS
            assert TABLE1_PARTS <= set(declared.recipes) and extra <= TABLE1_CHANGES and len(extra) <= 1, (
                name, declared.recipes)


def test_there_is_one_table1_row_per_variant_and_paper_size():
    rows = Counter((d.recipes["table1_variant"], d.recipes["table1_size"]) for d in table1_rows().values())
    assert rows == Counter({(variant, size): 1 for variant in PAPER_VARIANTS for size in PAPER_SIZES})


def check_composes_and_instantiates(cfg, name: str) -> None:
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


def check_table1_recipe(cfg, declared: Declaration, config_dir: Path = CONFIGS) -> None:
    """The Table 1 recipe of the variant and size ``declared``, but for the keys its declared change recipe sets."""
    variant, size = declared.recipes["table1_variant"], declared.recipes["table1_size"]
    changed = set().union(*(keys_set_by(f"{group}/{declared.recipes[group]}", config_dir)
                            for group in TABLE1_CHANGES if group in declared.recipes))
    lr, tokens = PAPER_SIZES[size]
    assert (cfg.task_name, cfg.model.net.variant, cfg.model.net.size) == (declared.name, variant, size)
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
        if f"model.net.{key}" not in changed:
            assert getattr(config, key) == value, key
    if config.memory is not None:
        assert config.memory.chunk_size == 16 and config.memory.num_heads == config.n_heads


@pytest.mark.parametrize("name", TABLE1)
def test_experiment_composes_and_instantiates(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    check_composes_and_instantiates(_compose(tmp_path, [f"experiment={name}"]), name)


@pytest.mark.parametrize("name", TABLE1)
def test_each_experiment_holds_the_paper_recipe(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    check_table1_recipe(_compose(tmp_path, [f"experiment={name}"]), declarations()[name])


def test_an_experiment_is_checked_by_the_recipe_it_declares_not_by_its_name(tmp_path, monkeypatch):
    """A copy of configs/ with two experiments under names no rule knows: both compose the Table 1 recipe (MAG,
    340M), so both are Table 1 rows and get its checks; the one that keeps the recipe passes them, the one that
    changes the learning rate fails them."""
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    declaration = ("# @package _global_\ndefaults:\n  - /recipe/table1\n  - /recipe/table1_variant@_here_: mag\n"
                   "  - /recipe/table1_size@_here_: 340m\n\ntask_name: {name}\n")
    (configs / "experiment" / "zz_any_name.yaml").write_text(declaration.format(name="zz_any_name"))
    (configs / "experiment" / "mqar_not_really.yaml").write_text(
        declaration.format(name="mqar_not_really") + "model:\n  optimizer:\n    lr: 1e-3\n")

    rows = table1_rows(configs)
    assert {"zz_any_name", "mqar_not_really"} <= set(rows) and set(composing("table1", configs)) == {
        *TABLE1, "zz_any_name", "mqar_not_really"}
    for name in ("zz_any_name", "mqar_not_really"):
        assert (rows[name].recipes["table1_variant"], rows[name].recipes["table1_size"]) == ("mag", "340m")
    cfg = _compose(tmp_path, ["experiment=zz_any_name"], config_dir=configs)
    check_composes_and_instantiates(cfg, "zz_any_name")
    check_table1_recipe(cfg, rows["zz_any_name"], configs)
    cfg = _compose(tmp_path, ["experiment=mqar_not_really"], config_dir=configs)
    with pytest.raises(AssertionError):
        check_table1_recipe(cfg, rows["mqar_not_really"], configs)


def test_every_variant_of_a_size_reads_the_same_data_and_validates_on_the_same_documents(tmp_path, monkeypatch):
    """So that their validation perplexities compare: one data config per size, one held-out split for all."""
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    data = {}
    for name, declared in table1_rows().items():
        cfg = _compose(tmp_path, [f"experiment={name}"])
        data[declared.recipes["table1_size"], declared.recipes["table1_variant"]] = OmegaConf.to_container(
            cfg.data, resolve=True)
    assert {size for size, _ in data} == set(PAPER_SIZES)
    for size in PAPER_SIZES:
        assert len({str(d) for (s, _), d in data.items() if s == size}) == 1, size
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
