"""The Table 5 ablations and the Figure 7 memory-depth runs are their Table 1 experiment with exactly the intended
change: each composed config is compared, key by key, with its composed base (not with a list written here), and the
model it builds with the base's model. (That every experiment composes and instantiates offline is
tests/test_train_configs.py's, which runs over every file of configs/experiment/.)"""

from __future__ import annotations

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from train_helpers import ROOT
from train_helpers import compose_train_config as _compose

MISSING = object()  # a key the composed config does not hold

# experiment -> (its base, the keys it changes -> new value); every other key must equal the base's
TABLE5 = {
    "ablation_lmm_linear_memory": {"model.net.memory.depth": 1},
    "ablation_lmm_no_conv": {"model.net.memory.use_conv": False},
    "ablation_lmm_no_momentum": {"model.net.memory.momentum": False},
    "ablation_lmm_no_weight_decay": {"model.net.memory.forget": False},
    "ablation_lmm_no_persistent": {"model.net.n_persistent": 0},
}
DEEP = {"model.net.memory.theta_init": 0.001}  # depth 3-4: the smaller initial inner learning rate
DEPTH_CHANGES = {1: {"model.net.memory.depth": 1}, 2: {}, 3: {"model.net.memory.depth": 3, **DEEP},
                 4: {"model.net.memory.depth": 4, **DEEP}}
DEPTHS = {f"lmm_depth{d}_{size}": (f"lmm_{size}", DEPTH_CHANGES[d])
          for d in (1, 2, 3, 4) for size in ("170m", "340m", "760m")}
CASES = {**{name: ("lmm_400m", change) for name, change in TABLE5.items()}, **DEPTHS}
BOOKKEEPING = {"task_name", "tags"}


def _flat(cfg) -> dict:
    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{prefix}{key}.")
        else:
            yield prefix[:-1], node

    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    container.pop("paths", None)  # where this test composed it (train_helpers sets them to a temporary directory)
    return dict(walk(container, ""))


_FLAT: dict[str, dict] = {}


def _composed(tmp_path, name):
    return _compose(tmp_path, [f"experiment={name}"])


def _flat_experiment(tmp_path, name) -> dict:
    """The flattened composed config of an experiment (each base is composed once for all its variants)."""
    if name not in _FLAT:
        _FLAT[name] = _flat(_composed(tmp_path, name))
    return _FLAT[name]


def test_every_ablation_and_depth_file_is_covered():
    files = {p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml")}
    assert {f for f in files if f.startswith(("ablation_", "lmm_depth"))} == set(CASES)
    assert {p.stem for p in (ROOT / "configs" / "recipe" / "table5").glob("*.yaml")} == {
        name.removeprefix("ablation_lmm_") for name in TABLE5}


@pytest.mark.parametrize("name", sorted(CASES))
def test_differs_from_its_base_in_exactly_the_intended_fields(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    base_name, change = CASES[name]
    base, ours = _flat_experiment(tmp_path, base_name), _flat_experiment(tmp_path, name)
    # a change may set a field that the base leaves to the code's default (n_persistent: titans.models.sizes)
    assert set(ours) - set(change) == set(base) - set(change), set(ours) ^ set(base)
    differing = {key for key in set(ours) | set(base) if ours.get(key, MISSING) != base.get(key, MISSING)}
    assert differing - BOOKKEEPING == set(change), differing
    for key, value in change.items():
        assert ours[key] == value and base.get(key, MISSING) != value, key
    assert ours["task_name"] == name and base["task_name"] == base_name


@pytest.mark.parametrize("name", sorted(TABLE5))
def test_the_built_model_differs_in_the_same_field(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))

    def built(experiment):
        cfg = _composed(tmp_path, experiment)
        with torch.device("meta"):
            return hydra.utils.instantiate(cfg.model.net, vocab_size=32000).config.to_dict()

    base, ours = built("lmm_400m"), built(name)
    [(key, value)] = TABLE5[name].items()
    field = key.removeprefix("model.net.")
    group, _, leaf = field.rpartition(".")
    assert (ours[group][leaf] if group else ours[leaf]) == value
    # ffn_dim follows from the parameter matching (docs/design.md): a smaller memory leaves a wider SwiGLU
    strip = {k: v for k, v in ours.items() if k not in ("memory", leaf, "ffn_dim")}
    assert strip == {k: v for k, v in base.items() if k not in ("memory", leaf, "ffn_dim")}
    if group:
        assert {k: v for k, v in ours["memory"].items() if k != leaf} == {
            k: v for k, v in base["memory"].items() if k != leaf}
    else:
        assert ours["memory"] == base["memory"]
