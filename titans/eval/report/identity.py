"""The model behind a result file, in the paper's terms: the variant under the paper's name and, for the LMM, the
Table 5 change it carries (:func:`identify`); the size whose shape it has (:func:`size_of`)."""

from __future__ import annotations

from dataclasses import dataclass

#: which memory fields make the LMM one of Table 5's ablations (and n_persistent == 0)
TABLE5_FIELDS = {"depth": "Linear Memory", "use_conv": "w/o Convolution", "momentum": "w/o Momentum",
                 "forget": "w/o Weight Decay"}
TABLE5_ATTENTION_ROWS = {"mac": "+Attn (MAC)", "mag": "+Attn (MAG)", "mal": "+Attn (MAL)"}


@dataclass(frozen=True)
class Identity:
    """What a checkpoint is, in the paper's terms."""

    variant: str | None
    name: str  # the paper's name of the model ("Titans (MAC)"), or the class name for other models
    changes: frozenset = frozenset()  # memory fields that differ from the variant's preset; "n_persistent" if 0
    depth: int | None = None

    @property
    def plain(self) -> bool:
        """The variant as the paper trains it (no ablation, the default memory depth)."""
        return not self.changes

    @property
    def table5_row(self) -> str | None:
        if self.variant == "lmm":
            if not self.changes:
                return "LMM"
            if len(self.changes) == 1:
                [change] = self.changes
                if change == "n_persistent":
                    return "w/o Persistent Memory"
                if change == "depth":
                    return "Linear Memory" if self.depth == 1 else None
                return TABLE5_FIELDS.get(change)
            return None
        return TABLE5_ATTENTION_ROWS.get(self.variant) if self.plain else None

    @property
    def figure7_row(self) -> str | None:
        """``LMM (L_M=d)`` for an LMM whose only change (if any) is its memory depth."""
        if self.variant == "lmm" and self.changes <= {"depth"} and self.depth:
            return f"LMM (L_M={self.depth})"
        return None


def identify(model: dict) -> Identity:
    """The Identity of a record's ``model`` entry (class, config)."""
    from titans.memory import MemoryConfig
    from titans.models.variants import VARIANTS, display_name

    config = model.get("config") or {}
    variant = config.get("variant")
    if variant is None:
        return Identity(None, model.get("class") or "model")
    name, spec = display_name(variant), VARIANTS.get(variant)
    memory = config.get("memory")
    if spec is None or spec.memory_preset is None or not isinstance(memory, dict):
        return Identity(variant, name)
    preset = MemoryConfig.preset(spec.memory_preset).to_dict()
    changes = {k for k in TABLE5_FIELDS if k in memory and memory[k] != preset[k]}
    if spec.n_persistent and config.get("n_persistent") == 0:  # a variant with persistent tokens run without
        changes.add("n_persistent")
    return Identity(variant, name, frozenset(changes), memory.get("depth"))


def size_of(config: dict) -> str | None:
    """The name of the size whose shape (blocks, width, heads) the model has, if any."""
    from titans.models.sizes import SIZES

    shape = (config.get("n_layers"), config.get("d_model"), config.get("n_heads"))
    return next((name for name, s in SIZES.items() if (s["n_layers"], s["d_model"], s["n_heads"]) == shape), None)
