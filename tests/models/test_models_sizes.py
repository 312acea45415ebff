"""Parameter counts of every variant at every size (built on the meta device, so instant)."""
import pytest

from titans.models import NOMINAL_PARAMS, SIZES, VARIANTS, build_config, count_params, nominal_params


def test_parameter_count_table():
    rows, bad = [], []
    for size in SIZES:
        counts = {v: count_params(build_config(v, size, vocab_size=32000)) for v in VARIANTS}
        rows.append(f"| {size} | " + " | ".join(f"{counts[v] / 1e6:.1f}M" for v in VARIANTS) + " |")
        reference = counts["transformer"]
        for v, n in counts.items():
            if abs(n - reference) > 0.01 * reference:  # variants are matched to Transformer++ (ffn width)
                bad.append(f"{size}/{v}: {n} vs Transformer++ {reference}")
            if size in NOMINAL_PARAMS and abs(n - NOMINAL_PARAMS[size]) > 0.15 * NOMINAL_PARAMS[size]:
                bad.append(f"{size}/{v}: {n / 1e6:.1f}M is not within 15% of {size}")
    print("\n| size | " + " | ".join(VARIANTS) + " |\n|" + "---|" * (len(VARIANTS) + 1) + "\n" + "\n".join(rows))
    assert not bad, bad


def test_sizes_are_named_after_their_counts_and_grow_in_order():
    assert nominal_params("170m") == 170e6 and nominal_params("1.3b") == 1.3e9 and nominal_params("tiny") is None
    assert set(NOMINAL_PARAMS) == {s for s in SIZES if s not in ("tiny", "small")}  # every paper size has its count
    counts = [count_params(build_config("transformer", size, vocab_size=32000)) for size in SIZES]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), counts  # tiny < small < 170m < ... < 1.3b
    for size, shape in SIZES.items():  # attention heads of an even width (RoPE), whole memory heads
        assert shape["d_model"] % shape["n_heads"] == 0 and (shape["d_model"] // shape["n_heads"]) % 2 == 0, size


def test_overrides_win():
    cfg = build_config("mac", "tiny", vocab_size=100, ffn_dim=77, segment_len=32)
    assert cfg.ffn_dim == 77 and cfg.segment_len == 32 and cfg.d_model == SIZES["tiny"]["d_model"]
    with pytest.raises(ValueError, match="unknown size"):
        build_config("mac", "2b")


@pytest.mark.parametrize("size", sorted(SIZES))
def test_window_and_persistent_tokens_have_one_default_per_size(size):
    """The CPU sizes attend over 128 tokens with 16 persistent tokens, the paper's sizes over 2048 with 128
    (NeurIPS App. E.1); variants without a window or persistent tokens keep TitansConfig's (unused) window and none."""
    from titans.models.config import TitansConfig
    from titans.models.sizes import SCALED_DEFAULTS

    window, persistent = (128, 16) if size in SCALED_DEFAULTS else (2048, 128)
    for variant in ("mag", "mal", "swa"):
        assert build_config(variant, size, vocab_size=256, match_params=False).window == window
    for variant in ("mac", "mag", "mal", "lmm"):
        assert build_config(variant, size, vocab_size=256, match_params=False).n_persistent == persistent
    for variant in ("transformer", "swa", "deltanet", "gated_deltanet", "ttt"):
        assert build_config(variant, size, vocab_size=256, match_params=False).n_persistent == 0
    for variant in ("transformer", "mac", "lmm"):  # no window: the config keeps TitansConfig's
        assert build_config(variant, size, vocab_size=256, match_params=False).window == TitansConfig().window
    given = build_config("mag", size, vocab_size=256, match_params=False, window=64, n_persistent=0)
    assert (given.window, given.n_persistent) == (64, 0)
