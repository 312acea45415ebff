"""The variant registry (titans.models.variants): one module per variant, one table that everything reads.

A toy variant defined here, registered the way a variant module registers (a mixer, its state, a BlockType and a
VariantSpec) plus one model YAML, builds from Hydra, trains, streams with a cache, and is named by the report and the
model card; the built-in variants keep the defaults they had before the registry; every variant module is in the
remote-code bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from numerics import assert_within_reference_error, float64_copy
from titans.layers import KVCache
from titans.memory import MemoryConfig, MemoryState
from titans.models import MACState, MAGState, TitansCache, TitansConfig, build_causal_lm, output_cache, variants
from titans.models.remote_code import bundle_sources, flat_name
from titans.models.variants import BLOCK_TYPES, VARIANTS, BlockType, VariantSpec
from titans.models.variants.attention import SWA_BLOCK
from train_helpers import ROOT, compose_train_config

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB = 64


# --- the toy variant: what a file titans/models/variants/running_mean.py would hold -----------------------------
@dataclass(frozen=True)
class RunningMeanState:
    total: torch.Tensor  # [B, 1, d]: the sum of the values of every row so far
    count: int  # rows so far

    def map(self, fn):
        return RunningMeanState(fn(self.total), self.count)


class RunningMeanMixer(nn.Module):
    """y_t = W_o(mean_{i <= t} W_v x_i): causal, with a running sum as its state."""

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.value = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x, ctx, state: RunningMeanState | None):
        total = self.value(x).cumsum(1)
        before = 0
        if state is not None:
            total, before = total + state.total, state.count
        count = torch.arange(before + 1, before + x.shape[1] + 1, device=x.device, dtype=x.dtype)[:, None]
        return self.out(total / count), RunningMeanState(total[:, -1:], before + x.shape[1])


RUNNING_MEAN_BLOCK = BlockType("running_mean", RunningMeanMixer, state=RunningMeanState)
RUNNING_MEAN = VariantSpec(
    name="running_mean", display_name="Running mean (toy)", description="a running-mean toy variant",
    blocks=(RUNNING_MEAN_BLOCK, SWA_BLOCK), family="toy", n_persistent=2,
    equations="y_t = W_o mean_{i<=t} W_v x_i", forecasting_name="Running Mean",
)
# --- and configs/model/running_mean.yaml -------------------------------------------------------------------------
RUNNING_MEAN_YAML = """\
defaults:
  - module/causal_lm@_here_
  - _self_

net:
  variant: running_mean
  window: 4
"""


@pytest.fixture
def running_mean():
    variants.register(RUNNING_MEAN)
    yield RUNNING_MEAN
    variants.unregister(RUNNING_MEAN.name)
    assert "running_mean" not in VARIANTS and "running_mean" not in BLOCK_TYPES


def test_a_registered_variant_builds_from_its_yaml_and_trains(running_mean, tmp_path, monkeypatch):
    """configs/model/<name>.yaml (here on Hydra's search path) + the registered module: Hydra builds the model with
    the variant's defaults, and a few AdamW steps on one batch lower its loss with finite, nonzero gradients."""
    (tmp_path / "configs" / "model").mkdir(parents=True)
    (tmp_path / "configs" / "model" / "running_mean.yaml").write_text(RUNNING_MEAN_YAML)
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    cfg = compose_train_config(tmp_path, ["model=running_mean", "size=tiny",
                                          f"hydra.searchpath=[file://{tmp_path / 'configs'}]"])
    net = hydra.utils.instantiate(cfg.model, net={"vocab_size": VOCAB}, _convert_="all").net
    config = net.config
    assert config.variant == "running_mean" and config.n_persistent == 2 and config.memory is None
    assert config.block_types == ["running_mean", "swa"] * (config.n_layers // 2)
    assert all(isinstance(block.mixer, RunningMeanMixer) for block in net.model.layers[::2])

    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = net(input_ids=ids, labels=ids).loss
        loss.backward()
        for block in net.model.layers[::2]:
            for name, p in block.mixer.named_parameters():
                assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_a_registered_variant_streams_with_the_cache(running_mean):
    """Its state goes into TitansCache and prompt + steps give the full forward's logits (within 8x the float32
    full forward's own error against the float64 model)."""
    torch.manual_seed(0)
    model = build_causal_lm("running_mean", "tiny", vocab_size=VOCAB, n_layers=2, window=4).eval()
    ids = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids).logits
        full64 = float64_copy(model)(ids).logits
        out = model(ids[:, :6], use_cache=True)
        cache, pieces = output_cache(out), [out.logits]
        for t in range(6, 11):
            out = model(ids[:, t:t + 1], past_key_values=cache)
            pieces.append(out.logits)
    assert isinstance(cache, TitansCache) and isinstance(cache.layers[0], RunningMeanState)
    assert cache.layers[0].count == 2 + 11  # the persistent rows, then every token
    assert_within_reference_error(torch.cat(pieces, 1), full64, full, what="streamed logits")


def test_the_report_and_the_model_card_name_a_registered_variant(running_mean):
    from titans.eval.model_card import _architecture, variant_description
    from titans.eval.report.identity import identify
    from titans.eval.task_results import forecaster_name

    model = build_causal_lm("running_mean", "tiny", vocab_size=VOCAB, n_layers=2, window=4)
    record = {"class": type(model).__name__, "config": model.config.to_dict()}
    assert identify(record).name == "Running mean (toy)"
    assert variants.display_name("running_mean") == "Running mean (toy)"
    assert variant_description("running_mean") == "a running-mean toy variant"
    card = _architecture(model)
    assert "a running-mean toy variant; variant `running_mean`" in card
    assert "attention window | 4 tokens" in card and "segment" not in card  # from the swa block it uses
    assert forecaster_name("running_mean") == "Running Mean"


def test_the_registry_refuses_a_taken_name(running_mean):
    with pytest.raises(ValueError, match="already registered"):
        variants.register(VariantSpec(name="running_mean", display_name="x", description="x",
                                      blocks=(SWA_BLOCK,), family="toy"))
    with pytest.raises(ValueError, match="block type named 'swa'"):
        variants.register(VariantSpec(name="other", display_name="x", description="x", family="toy",
                                      blocks=(BlockType("swa", RunningMeanMixer),)))
    assert "other" not in VARIANTS
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        TitansConfig(variant="nope")


# The defaults the variants had before the registry (titans/models/config.py of 2026-12-05), stated once.
BEFORE = {
    # variant: (memory preset or None, n_persistent default, block pattern of 5 layers)
    "mac": ("titans", 128, ["mac"] * 5),
    "mag": ("titans", 128, ["mag"] * 5),
    "mal": ("titans", 128, ["lmm", "swa", "lmm", "swa", "lmm"]),
    "lmm": ("titans", 128, ["lmm"] * 5),
    "transformer": (None, 0, ["attn"] * 5),
    "swa": (None, 0, ["swa"] * 5),
    "deltanet": ("deltanet", 0, ["lmm"] * 5),
    "gated_deltanet": ("gated_deltanet", 0, ["lmm"] * 5),
    "ttt": ("ttt", 0, ["lmm"] * 5),
}


@pytest.mark.parametrize("variant", list(BEFORE))
def test_each_built_in_variant_keeps_its_defaults(variant):
    preset, n_persistent, blocks = BEFORE[variant]
    config = TitansConfig(variant=variant, d_model=32, n_heads=2, n_layers=5)
    assert (config.n_persistent, config.block_types) == (n_persistent, blocks)
    if preset is None:
        assert config.memory is None and variant not in variants.MEMORY_PRESETS
    else:
        assert config.memory == MemoryConfig.preset(preset, num_heads=2)
        assert variants.MEMORY_PRESETS[variant] == preset


def test_the_registry_lists_the_built_in_variants_in_order_with_their_names_and_states():
    assert list(VARIANTS) == ["mac", "mag", "mal", "lmm", "transformer", "swa", "deltanet", "gated_deltanet", "ttt"]
    # the state each block type declares (tests/models/test_models_variants.py checks the mixers return it)
    assert {kind: block.state for kind, block in BLOCK_TYPES.items()} == {
        "attn": KVCache, "swa": KVCache, "lmm": MemoryState, "mag": MAGState, "mac": MACState}
    assert variants.TITANS_VARIANTS == ("mac", "mag", "mal", "lmm")
    assert variants.ATTENTION_VARIANTS == ("transformer", "swa")
    names = {v: spec.display_name for v, spec in VARIANTS.items()}
    assert names == {"mac": "Titans (MAC)", "mag": "Titans (MAG)", "mal": "Titans (MAL)", "lmm": "Titans (LMM)",
                     "transformer": "Transformer++", "swa": "SWA", "deltanet": "DeltaNet",
                     "gated_deltanet": "Gated DeltaNet", "ttt": "TTT"}
    assert all(spec.equations for spec in VARIANTS.values())


def test_every_variant_has_its_model_yaml_and_every_model_yaml_names_a_variant():
    """Adding a variant is one module and one configs/model/<name>.yaml: the two lists are the same."""
    yamls = {}
    for path in sorted((ROOT / "configs" / "model").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        if "module/causal_lm@_here_" in (cfg.get("defaults") or []):
            yamls[path.stem] = cfg.net.variant
    assert yamls == {name: name for name in VARIANTS}


def test_every_variant_module_is_in_the_remote_code_bundle():
    files = bundle_sources()
    package = Path(variants.__file__).parent
    modules = ["titans.models.variants"] + [f"titans.models.variants.{p.stem}" for p in sorted(package.glob("*.py"))
                                            if p.stem != "__init__"]
    assert {"titans.models.variants.mac", "titans.models.variants.attention"} <= set(modules)
    for module in modules:
        assert flat_name(module) + ".py" in files, module
