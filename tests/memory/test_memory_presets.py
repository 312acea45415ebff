"""configs/model/memory/*.yaml and MemoryConfig.preset cannot drift: one YAML per preset, every MemoryConfig field
in each, and each YAML instantiated by Hydra equals the preset field for field. The training configs compose from
configs/ alone (nothing registered from Python) and take the preset, then their two run policies."""

import dataclasses

import hydra
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from titans.memory import MemoryConfig
from titans.memory.config import PRESETS
from titans.models.config import MEMORY_PRESETS
from train_helpers import ROOT

CONFIGS = ROOT / "configs"
MEMORY_DIR = CONFIGS / "model" / "memory"
FIELDS = [f.name for f in dataclasses.fields(MemoryConfig)]


def test_every_preset_has_a_yaml_and_every_yaml_is_a_preset():
    assert sorted(p.stem for p in MEMORY_DIR.glob("*.yaml")) == sorted(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_yaml_lists_every_field_and_instantiates_to_the_preset(name):
    node = OmegaConf.load(MEMORY_DIR / f"{name}.yaml")
    assert node._target_ == "titans.memory.MemoryConfig"
    assert [key for key in node if key != "_target_"] == FIELDS  # every field, no other key, in the class's order
    built = hydra.utils.instantiate(node)
    assert type(built) is MemoryConfig
    expected = MemoryConfig.preset(name)
    for field in FIELDS:
        assert getattr(built, field) == getattr(expected, field), field
        assert type(getattr(built, field)) is type(getattr(expected, field)), field  # 0.1 stays a float, ...
    assert built == expected


def _compose(overrides):
    """configs/train.yaml composed with Hydra's plain API (no resolver or config group registered here)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train.yaml", overrides=overrides)


@pytest.mark.parametrize("variant", sorted(MEMORY_PRESETS))
def test_a_training_config_takes_its_variants_preset_and_the_run_policies(variant, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(CONFIGS.parent))
    monkeypatch.setenv("TITANS_COMPILE", "true")
    cfg = _compose([f"model={variant}"])
    memory = hydra.utils.instantiate(cfg.model.net.memory)
    # the preset, but for the memory heads (null: the model's, TitansConfig fills them in) and the compiled step
    assert memory == MemoryConfig.preset(MEMORY_PRESETS[variant], num_heads=None, compile=True)
    monkeypatch.setenv("TITANS_COMPILE", "false")
    assert hydra.utils.instantiate(cfg.model.net.memory).compile is False


def test_a_memory_field_is_overridden_without_plus_and_a_misspelt_one_is_refused(monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(CONFIGS.parent))
    cfg = _compose(["model=lmm", "model.net.memory.chunk_size=8", "model.net.memory.max_lr=0.2"])
    memory = hydra.utils.instantiate(cfg.model.net.memory)
    assert (memory.chunk_size, memory.max_lr) == (8, 0.2)
    with pytest.raises(Exception, match="chunk_sise"):
        _compose(["model=lmm", "model.net.memory.chunk_sise=8"])


def test_the_preset_of_a_variant_is_swapped_from_the_command_line_and_keeps_the_run_policies(monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(CONFIGS.parent))
    monkeypatch.setenv("TITANS_COMPILE", "false")
    cfg = _compose(["model=mac", "model/memory@model.net.memory=gated_deltanet"])
    assert cfg.model.net.variant == "mac"
    assert hydra.utils.instantiate(cfg.model.net.memory) == MemoryConfig.preset("gated_deltanet", num_heads=None)
