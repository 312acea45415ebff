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
