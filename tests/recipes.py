"""What each experiment config (configs/experiment/*.yaml) declares that it reproduces: the recipes of
configs/recipe/ its defaults list composes. The tests choose an experiment's checks from this declaration, never
from its file name, so an experiment named anything that composes ``/recipe/table1`` gets the Table 1 checks.

The defaults lists are read from the files (fast enough to parametrize tests at collection); that this reading
agrees with Hydra's own defaults tree for every experiment is checked in tests/training/test_train_configs.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@dataclass(frozen=True)
class Declaration:
    """One experiment's declaration. ``recipes``: configs/recipe/NAME.yaml as ``{NAME: None}``,
    configs/recipe/GROUP/CHOICE.yaml as ``{GROUP: CHOICE}`` (every recipe it composes, through nested defaults
    lists too). ``selects``: the config groups it (or a recipe it composes) overrides, ``{GROUP: CHOICE}``."""

    name: str
    recipes: dict[str, str | None] = field(default_factory=dict)
    selects: dict[str, str | None] = field(default_factory=dict)

    def composes(self, recipe: str) -> bool:
        return recipe in self.recipes


def _defaults(path: Path) -> list:
    data = yaml.safe_load(path.read_text()) or {}
    return data.get("defaults", []) if isinstance(data, dict) else []


def _resolve(key: str, parent_group: str) -> str:
    """A defaults-list path as Hydra resolves it: absolute from configs/, else relative to the parent's group."""
    key = key.split("@", 1)[0].strip()
    if key.startswith("optional "):
        key = key.removeprefix("optional ").strip()
    return key[1:] if key.startswith("/") else f"{parent_group}/{key}".strip("/")


def _walk(config_path: str, config_dir: Path, out: Declaration, seen: set[str]) -> None:
    """Hydra's precedence for the group overrides: a config's own (the later of two) before those of the configs
    it composes, and those of an earlier composed config before a later one's."""
    if config_path in seen:
        return
    seen.add(config_path)
    group = config_path.rpartition("/")[0]
    entries = [e for e in _defaults(config_dir / f"{config_path}.yaml") if e != "_self_"]
    for entry in reversed(entries):  # {override /data: ecl}
        if isinstance(entry, dict):
            [(key, choice)] = entry.items()
            if key.startswith("override "):
                out.selects.setdefault(_resolve(key.removeprefix("override ").strip(), ""), choice)
    for entry in entries:
        if isinstance(entry, str):  # a config: /recipe/table1
            composed = _resolve(entry, group)
        else:  # a group and its choice: {/recipe/table1_variant@_here_: mac}
            [(key, choice)] = entry.items()
            if key.startswith("override ") or choice is None:
                continue
            composed = f"{_resolve(key, group)}/{choice}"
        if composed.startswith("recipe/"):
            recipe_group, _, name = composed.removeprefix("recipe/").rpartition("/")
            out.recipes[recipe_group or name] = name if recipe_group else None
        _walk(composed, config_dir, out, seen)


@lru_cache(maxsize=None)
def _declarations(config_dir: Path) -> dict[str, Declaration]:
    result = {}
    for path in sorted((config_dir / "experiment").glob("*.yaml")):
        declaration = Declaration(path.stem)
        _walk(f"experiment/{path.stem}", config_dir, declaration, set())
        result[path.stem] = declaration
    return result


def declarations(config_dir: Path = CONFIGS) -> dict[str, Declaration]:
    """Every experiment of ``config_dir``/experiment by name, with what it declares."""
    return _declarations(Path(config_dir).resolve())


def composing(recipe: str, config_dir: Path = CONFIGS) -> dict[str, Declaration]:
    """The experiments that compose configs/recipe/``recipe``.yaml (a top-level recipe such as ``table1``)."""
    return {name: d for name, d in declarations(config_dir).items() if d.composes(recipe)}


# The Table 1 recipe is recipe/table1 + one recipe/table1_variant + one recipe/table1_size; an experiment that also
# composes one of these groups is a Table 1 run with one declared change (its base is the Table 1 row of its variant
# and size).
TABLE1_PARTS = {"table1", "table1_variant", "table1_size"}
TABLE1_CHANGES = {"table5", "figure7"}


def table1_rows(config_dir: Path = CONFIGS) -> dict[str, Declaration]:
    """The experiments that declare exactly a Table 1 row: the recipe, a variant and a size, no change."""
    return {name: d for name, d in composing("table1", config_dir).items() if set(d.recipes) == TABLE1_PARTS}


def table1_changes(config_dir: Path = CONFIGS) -> dict[str, Declaration]:
    """The experiments that declare a Table 1 row with one change recipe (Table 5's ablations, Figure 7's depths)."""
    return {name: d for name, d in composing("table1", config_dir).items()
            if set(d.recipes) - TABLE1_PARTS and set(d.recipes) - TABLE1_PARTS <= TABLE1_CHANGES}


def keys_set_by(recipe_path: str, config_dir: Path = CONFIGS) -> set[str]:
    """The dotted keys a recipe file sets (``model.net.n_persistent`` for recipe/table5/no_persistent)."""
    data = yaml.safe_load((Path(config_dir) / "recipe" / f"{recipe_path}.yaml").read_text()) or {}

    def walk(node, prefix):
        for key, value in node.items():
            if key == "defaults":
                continue
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    return set(walk(data, ""))
