"""Every architecture: causality, cached generation == full recompute, training, save/load.

Tiny configs with segment_len=6, window=5, memory chunk_size=4 and 3 persistent tokens, so that the
prompts and steps below end inside and across chunk, segment and window boundaries. float32 logits computed two
ways are compared through tests/numerics.py: each against the float64 model's, within 8x the float32 full
forward's own error.
"""
import copy

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from titans.memory import MemoryConfig
from titans.models import (BLOCK_TYPES, TITANS_VARIANTS, VARIANTS, TitansCache, TitansConfig, TitansForCausalLM,
                           build_causal_lm, output_cache)
from titans.models.config import MEMORY_PRESETS
from numerics import assert_within_reference_error, float64_copy

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB = 64
MEMORY_VARIANTS = [v for v in VARIANTS if v not in ("transformer", "swa")]


def tiny(variant, n_layers=2, seed=0, **overrides):
    torch.manual_seed(seed)
    kwargs = dict(d_model=32, n_heads=2, n_layers=n_layers, window=5, segment_len=6,
                  n_persistent=3 if variant in TITANS_VARIANTS else 0)
    if variant in MEMORY_VARIANTS:
        kwargs["memory"] = dict(chunk_size=4)
    kwargs.update(overrides)
    return build_causal_lm(variant, "tiny", vocab_size=VOCAB, **kwargs).eval()


def tokens(batch=2, length=23, seed=1):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", VARIANTS)
def test_causality(variant, tol_seed):
    """Changing token t leaves the logits before t as they were (as close to the float64 model's as the logits
    of the unchanged input are) and changes those from t on."""
    model, x = tiny(variant, seed=tol_seed), tokens(seed=1 + tol_seed)
    model64 = float64_copy(model)
    with torch.no_grad():
        base = model(x).logits
        for t in (0, 6, 11, 22):
            x2 = x.clone()
            x2[:, t] = (x2[:, t] + 1) % VOCAB
            out = model(x2).logits
            if t:
                assert_within_reference_error(out[:, :t], model64(x2[:, :t]).logits, base[:, :t], what=f"before {t}")
            assert (out[:, t:] - base[:, t:]).abs().max() > 1e-5  # the change is seen from t on


@pytest.mark.parametrize("variant", VARIANTS)
def test_cached_streaming_equals_full_forward(variant, tol_seed):
    model, x = tiny(variant, seed=tol_seed), tokens(seed=1 + tol_seed)
    with torch.no_grad():
        full = model(x).logits
        full64 = float64_copy(model)(x).logits
        for prompt in (1, 4, 5, 6, 7, 13):
            out = model(x[:, :prompt], use_cache=True)
            cache, logits, pos = output_cache(out), [out.logits], prompt
            assert isinstance(cache, TitansCache) and cache.seen_tokens == prompt
            while pos < x.shape[1]:
                step = 1 if pos % 2 else 3  # mix single tokens and multi-token pieces
                out = model(x[:, pos : pos + step], past_key_values=cache, use_cache=True)
                cache, pos = output_cache(out), pos + step
                logits.append(out.logits)
            assert_within_reference_error(torch.cat(logits, 1), full64, full, what=f"prompt {prompt}")


def _tensors(state) -> list[torch.Tensor]:
    found = []
    state.map(lambda t: found.append(t) or t)
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_block_keeps_a_typed_state_that_the_next_step_leaves_unchanged(variant):
    # (tests/models/test_models_variants_registry.py)
    expected = {kind: block.state for kind, block in BLOCK_TYPES.items()}
    model, x = tiny(variant), tokens(batch=1, length=9)
    with torch.no_grad():
        cache = output_cache(model(x[:, :6], use_cache=True))
        before = list(cache.layers)
        copies = [[t.clone() for t in _tensors(state)] for state in before]
        model(x[:, 6:], past_key_values=cache, use_cache=True)
    for kind, state, old, copy_ in zip(model.config.block_types, cache.layers, before, copies):
        assert isinstance(state, expected[kind]) and state is not old
        assert all(torch.equal(a, b) for a, b in zip(_tensors(old), copy_)), kind  # states are values


@pytest.mark.parametrize("variant", ["mac", "mag", "mal", "lmm"])
def test_without_persistent_tokens(variant, tol_seed):
    """The 'w/o persistent memory' ablation: n_persistent=0 streams and generates the same way."""
    model, x = tiny(variant, seed=tol_seed, n_persistent=0), tokens(length=15, seed=1 + tol_seed)
    assert model.model.persistent is None
    with torch.no_grad():
        full = model(x).logits
        full64 = float64_copy(model)(x).logits
        out = model(x[:, :7], use_cache=True)
        logits, cache = [out.logits], output_cache(out)
        for t in range(7, 15):
            out = model(x[:, t : t + 1], past_key_values=cache, use_cache=True)
            logits.append(out.logits)
    assert_within_reference_error(torch.cat(logits, 1), full64, full)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("prompt_len", [5, 8])
def test_greedy_generate_equals_recompute(variant, prompt_len, tol_seed):
    model, x = tiny(variant, seed=tol_seed), tokens(length=prompt_len, seed=1 + tol_seed)
    model64 = float64_copy(model)
    new = 10
    gen = model.generate(x, max_new_tokens=new, do_sample=False, output_logits=True, return_dict_in_generate=True)
    seq = x
    with torch.no_grad():
        for i in range(new):
            logits = model(seq).logits[:, -1]
            assert_within_reference_error(gen.logits[i], model64(seq).logits[:, -1], logits, what=f"step {i}")
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], 1)
    assert torch.equal(gen.sequences, seq)


@pytest.mark.parametrize("variant", VARIANTS)
def test_train_step_lowers_loss_and_reaches_every_parameter(variant):
    model = tiny(variant).train()
    x = tokens(batch=4, length=20)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(6):
        loss = model(x, labels=x, return_logits=False).loss  # the fused LM-head loss that training uses
        loss.backward()
        if step == 0:
            missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not missing, f"no gradient reaches {missing}"
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_roundtrip(variant, tmp_path):
    model, x = tiny(variant), tokens()
    model.save_pretrained(tmp_path)
    loaded = TitansForCausalLM.from_pretrained(tmp_path).eval()
    auto = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(auto, TitansForCausalLM) and AutoConfig.from_pretrained(tmp_path).variant == variant
    # where it was loaded from, and the remote code it names (titans.models.remote_code)
    strip = lambda d: {k: v for k, v in d.items() if k not in ("_name_or_path", "auto_map")}
    assert strip(loaded.config.to_dict()) == strip(model.config.to_dict())
    with torch.no_grad():
        ref = model(x).logits
        torch.testing.assert_close(loaded(x).logits, ref, atol=0, rtol=0)
        torch.testing.assert_close(auto(x).logits, ref, atol=0, rtol=0)


def test_tied_embeddings_roundtrip(tmp_path):
    model = tiny("lmm", tie_embeddings=True)
    assert model.lm_head.weight is model.model.embed.weight
    model.save_pretrained(tmp_path)
    loaded = TitansForCausalLM.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embed.weight
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def _influence(model, x, source):
    """max |change of logits| per position when token `source` changes."""
    with torch.no_grad():
        x2 = x.clone()
        x2[:, source] = (x2[:, source] + 1) % VOCAB
        return (model(x2).logits - model(x).logits).abs().amax(dim=(0, 2))


def test_swa_receptive_field_is_the_window():
    model, x = tiny("swa", n_layers=1, window=4, n_persistent=2), tokens(length=16)
    diff = _influence(model, x, 3)
    assert (diff[3:7] > 1e-5).all() and (diff[7:] == 0).all()


@pytest.mark.parametrize("variant", ["mag", "mal", "mac"])
def test_memory_carries_information_beyond_the_attention_span(variant):
    # one block (MAL: two, memory then SWA): attention alone cannot see token 0 from position 20
    n_layers = 2 if variant == "mal" else 1
    model, x = tiny(variant, n_layers=n_layers, window=3, segment_len=4), tokens(length=24)
    assert _influence(model, x, 0)[20:].min() > 1e-6


def test_persistent_tokens_are_learned_and_shift_outputs():
    model, x = tiny("mag"), tokens()
    assert model.model.persistent.shape == (3, 32)
    with torch.no_grad():
        base = model(x).logits
        model.model.persistent.add_(1.0)
        assert (model(x).logits[:, -1] - base[:, -1]).abs().max() > 1e-5  # visible beyond the window
    assert tiny("transformer").model.persistent is None  # baselines have none by default


def test_mal_layer_pattern_and_presets():
    assert TitansConfig(variant="mal", n_layers=4, d_model=32, n_heads=2).block_types == ["lmm", "swa", "lmm", "swa"]
    for variant, preset in MEMORY_PRESETS.items():  # each variant's memory is its preset, with the model's heads
        assert TitansConfig(variant=variant, d_model=32, n_heads=2).memory == MemoryConfig.preset(preset, num_heads=2)
    assert TitansConfig(variant="transformer", d_model=32, n_heads=2).memory is None


def test_generate_prefill_computes_only_the_last_logits():
    """generate() asks for logits_to_keep=1: a long prompt must not materialise [prompt, vocab] logits."""
    model, x = tiny("lmm"), tokens(batch=1, length=17)
    shapes = []
    model.register_forward_hook(lambda mod, args, out: shapes.append(tuple(out.logits.shape)))
    model.generate(x, max_new_tokens=3, do_sample=False)
    assert shapes == [(1, 1, VOCAB)] * 3, shapes


@pytest.mark.parametrize("variant", ["mac", "lmm"])
def test_generate_feeds_each_token_once(variant):
    """generate() must hand the cache back to the model (transformers 5.x calls it ``cache``, 4.x
    ``past_key_values``): after the prefill, each step embeds only the one new token."""
    model, x = tiny(variant), tokens(batch=1, length=17)
    fed = []
    model.model.embed.register_forward_hook(lambda mod, args, out: fed.append(args[0].shape[1]))
    model.generate(x, max_new_tokens=4, do_sample=False)
    assert fed == [17, 1, 1, 1], fed


@pytest.mark.parametrize("variant", ["mac", "transformer"])
def test_generate_with_an_empty_prompt_is_a_clear_value_error(variant):
    """It was a raw IndexError from deep inside transformers' sampling loop."""
    from titans.eval.generation import greedy_generate

    model = tiny(variant)
    for empty in (torch.zeros(1, 0, dtype=torch.long), torch.zeros(0, 0, dtype=torch.long)):
        with pytest.raises(ValueError, match="empty prompt"):
            model.generate(empty, max_new_tokens=2, do_sample=False)
        with pytest.raises(ValueError, match="empty prompt"):
            model.generate(input_ids=empty, max_new_tokens=2, do_sample=False)
    with pytest.raises(ValueError, match="empty prompt"):
        greedy_generate(model, torch.zeros(1, 0, dtype=torch.long), max_new_tokens=2)
    assert model.generate(tokens(batch=1, length=1), max_new_tokens=2, do_sample=False).shape == (1, 3)


def test_forward_takes_the_cache_under_either_name():
    model, x = tiny("mag"), tokens(batch=1, length=9)
    with torch.no_grad():
        first = output_cache(model(x[:, :6], use_cache=True))
        a = model(x[:, 6:], cache=copy.deepcopy(first)).logits
        b = model(x[:, 6:], past_key_values=first).logits
    assert torch.equal(a, b)  # the same computation on the same values
    with pytest.raises(ValueError, match="not both"):
        model(x[:, 6:], cache=first, past_key_values=copy.deepcopy(first))


def test_beam_search_with_the_cache_equals_beam_search_without():
    model, x = tiny("mac"), tokens(batch=1, length=7)
    cached = model.generate(x, max_new_tokens=5, num_beams=3, do_sample=False)
    recomputed = model.generate(x, max_new_tokens=5, num_beams=3, do_sample=False, use_cache=False)
    assert cached.shape == (1, 12)
    assert torch.equal(cached, recomputed)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="unknown variant"):
        TitansConfig(variant="mamba")
    with pytest.raises(TypeError, match="depht"):
        TitansConfig(variant="lmm", d_model=32, n_heads=2, memory={"depht": 2})
    with pytest.raises(ValueError, match="unknown size"):
        build_causal_lm("lmm", "huge")
    model, x = tiny("transformer"), tokens()
    mask = torch.ones_like(x)
    mask[0, 0] = 0
    with pytest.raises(ValueError, match="padding"):
        model(x, attention_mask=mask)
    with pytest.raises(ValueError, match="padded"):
        model.generate(x, attention_mask=mask, max_new_tokens=2)
