"""The Table 5 ablations and the Figure 7 memory-depth runs are their Table 1 experiment with exactly the intended
change: each composed config is compared, key by key, with its composed base (not with a list written here), and the
model it builds with the base's model. Which experiments these are, and their bases, follows from what they declare
(tests/recipes.py): a Table 1 row (recipe/table1, a recipe/table1_variant, a recipe/table1_size) plus one change
recipe, recipe/table5/<row> or recipe/figure7/depth<d>; the base is the Table 1 row of the same variant and size.
(That every experiment of the Table 1 recipe composes and instantiates offline is
tests/training/test_train_configs.py's.)"""

from __future__ import annotations

from collections import Counter

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from recipes import TABLE1_CHANGES, Declaration, table1_changes, table1_rows
from train_helpers import ROOT
from train_helpers import compose_train_config as _compose

# change recipe -> (the keys it changes -> new value); every other key must equal the base's
TABLE5 = {  # configs/recipe/table5/<row>.yaml
    "linear_memory": {"model.net.memory.depth": 1},
    "no_conv": {"model.net.memory.use_conv": False},
    "no_momentum": {"model.net.memory.momentum": False},
    "no_weight_decay": {"model.net.memory.forget": False},
    "no_persistent": {"model.net.n_persistent": 0},
}
DEEP = {"model.net.memory.theta_init": 0.001}  # depth 3-4: the smaller initial inner learning rate
FIGURE7 = {"depth1": {"model.net.memory.depth": 1}, "depth2": {}, "depth3": {"model.net.memory.depth": 3, **DEEP},
           "depth4": {"model.net.memory.depth": 4, **DEEP}}  # configs/recipe/figure7/<depth>.yaml
INTENDED = {"table5": TABLE5, "figure7": FIGURE7}
assert set(INTENDED) == TABLE1_CHANGES
# the runs the paper has: Table 5 on the LMM at 400M, Figures 7-8 on the LMM at 170M, 340M (its 360M) and 760M
PAPER_RUNS = {("table5", row, "lmm", "400m") for row in TABLE5} | {
    ("figure7", depth, "lmm", size) for depth in FIGURE7 for size in ("170m", "340m", "760m")}
BOOKKEEPING = {"task_name", "tags"}
MISSING = object()  # a key the composed config does not hold

CHANGES = table1_changes()
ROWS = {(d.recipes["table1_variant"], d.recipes["table1_size"]): name for name, d in table1_rows().items()}


def _change(declared: Declaration) -> tuple[str, str]:
    [(group, choice)] = [(g, c) for g, c in declared.recipes.items() if g in TABLE1_CHANGES]
    return group, choice


def _base(declared: Declaration) -> str:
    return ROWS[declared.recipes["table1_variant"], declared.recipes["table1_size"]]


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


def test_every_ablation_and_depth_is_declared_once_and_has_a_base():
    for group, intended in INTENDED.items():
        assert {p.stem for p in (ROOT / "configs" / "recipe" / group).glob("*.yaml")} == set(intended), group
    declared = Counter((*_change(d), d.recipes["table1_variant"], d.recipes["table1_size"]) for d in CHANGES.values())
    assert declared == Counter(dict.fromkeys(PAPER_RUNS, 1))
    for name, d in CHANGES.items():
        assert (d.recipes["table1_variant"], d.recipes["table1_size"]) in ROWS, name


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_differs_from_its_base_in_exactly_the_intended_fields(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    group, choice = _change(CHANGES[name])
    base_name, change = _base(CHANGES[name]), INTENDED[group][choice]
    base, ours = _flat_experiment(tmp_path, base_name), _flat_experiment(tmp_path, name)
    # a change may set a field that the base leaves to the code's default (n_persistent: titans.models.sizes)
    assert set(ours) - set(change) == set(base) - set(change), set(ours) ^ set(base)
    differing = {key for key in set(ours) | set(base) if ours.get(key, MISSING) != base.get(key, MISSING)}
    assert differing - BOOKKEEPING == set(change), differing
    for key, value in change.items():
        assert ours[key] == value and base.get(key, MISSING) != value, key
    assert ours["task_name"] == name and base["task_name"] == base_name


@pytest.mark.parametrize("name", sorted(n for n, d in CHANGES.items() if _change(d)[0] == "table5"))
def test_the_built_model_differs_in_the_same_field(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))

    def built(experiment):
        cfg = _composed(tmp_path, experiment)
        with torch.device("meta"):
            return hydra.utils.instantiate(cfg.model.net, vocab_size=32000).config.to_dict()

    base, ours = built(_base(CHANGES[name])), built(name)
    [(key, value)] = TABLE5[_change(CHANGES[name])[1]].items()
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
