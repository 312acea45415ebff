"""NeuralMemory layer: streaming, causality, outer gradients, MAC retrieve, config, autocast, state handling."""

import dataclasses

import pytest
import torch

from titans.memory import MemoryConfig, MemoryState, NeuralMemory, chunked_memory
from titans.memory import mlp
from titans.memory.config import PRESETS
from numerics import assert_within_reference_error, float64_copy


pytestmark = pytest.mark.usefixtures("single_thread")


def make_mem(dtype=torch.float64, dim=8, **kw):
    torch.manual_seed(0)
    cfg = dict(num_heads=2, depth=2, expansion=2, chunk_size=4)
    cfg.update(kw)
    mem = NeuralMemory(dim, MemoryConfig(**cfg)).to(dtype)
    with torch.no_grad():  # token-dependent gates and a non-trivial M_0 / LN affine
        mem.gates.proj.weight.normal_(std=0.3)
        if mem.ln_weight is not None:
            mem.ln_weight.add_(0.1 * torch.randn_like(mem.ln_weight))
        if mem.depth == 1:
            mem.init_weights[0].normal_(std=0.3)
    return mem


def assert_states_close(a: MemoryState, b: MemoryState, tol=1e-10):
    for f in dataclasses.fields(MemoryState):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x is None or y is None:
            assert x is None and y is None, f.name
            continue
        xs, ys = (x, y) if isinstance(x, list) else ([x], [y])
        assert len(xs) == len(ys), f.name
        for u, w in zip(xs, ys):
            assert u.shape == w.shape, (f.name, u.shape, w.shape)
            assert torch.allclose(u, w, atol=tol, rtol=tol), (f.name, (u - w).abs().max())


SPLITS = [[1] * 11, [3, 5, 3], [4, 4, 3], [2, 7, 2], [10, 1], [0, 11]]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("preset", ["titans", "deltanet", "ttt"])
def test_streaming_equals_one_call(split, preset):
    mem = make_mem(**{k: v for k, v in dataclasses.asdict(MemoryConfig.preset(preset)).items()
                      if k in ("depth", "momentum", "forget")})
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    y_full, s_full = mem(x)
    ys, state, pos = [], None, 0
    for n in split:
        y, state = mem(x[:, pos : pos + n], state)
        ys.append(y)
        pos += n
    assert torch.allclose(torch.cat(ys, 1), y_full, atol=1e-10)
    assert state.chunk_pos == 11 % 4
    assert_states_close(state, s_full)


def test_streaming_channelwise_and_shared_gates():
    for kw in (dict(channelwise_alpha=True), dict(per_layer_gates=False), dict(use_conv=False, depth=3)):
        mem = make_mem(**kw)
        x = torch.randn(1, 9, 8, dtype=torch.float64)
        y_full, s_full = mem(x)
        y1, s = mem(x[:, :5])
        y2, s = mem(x[:, 5:], s)
        assert torch.allclose(torch.cat([y1, y2], 1), y_full, atol=1e-10), kw
        assert_states_close(s, s_full)


@pytest.mark.parametrize("chunk", [1, 4])
def test_causality(chunk):
    mem = make_mem(chunk_size=chunk)
    x = torch.randn(2, 12, 8, dtype=torch.float64)
    y, _ = mem(x)
    for t in (0, 5, 11):
        x2 = x.clone()
        x2[:, t] += torch.randn(2, 8, dtype=torch.float64)
        y2, _ = mem(x2)
        assert torch.equal(y2[:, :t], y[:, :t]), t
        assert not torch.allclose(y2[:, t], y[:, t]), t


def test_gradcheck_chunked_op():
    torch.manual_seed(1)
    N, T, d = 2, 6, 3
    dt = torch.float64
    q = torch.nn.functional.normalize(torch.randn(N, T, d, dtype=dt), dim=-1).requires_grad_()
    k = torch.nn.functional.normalize(torch.randn(N, T, d, dtype=dt), dim=-1).requires_grad_()
    v = torch.randn(N, T, d, dtype=dt, requires_grad=True)
    lr = (0.2 * torch.rand(N, T, 2, dtype=dt)).requires_grad_()
    log_eta = torch.rand(N, T, 2, dtype=dt).log().requires_grad_()
    log_decay = torch.log1p(-0.3 * torch.rand(N, T, 2, dtype=dt)).requires_grad_()
    W1 = torch.randn(N, d, 2 * d, dtype=dt, requires_grad=True)
    W2 = (torch.randn(N, 2 * d, d, dtype=dt) / 2).requires_grad_()
    S1 = (0.1 * torch.randn(N, d, 2 * d, dtype=dt)).requires_grad_()
    S2 = (0.1 * torch.randn(N, 2 * d, d, dtype=dt)).requires_grad_()
    lw = (1 + 0.1 * torch.randn(N, 1, d, dtype=dt)).requires_grad_()
    lb = (0.1 * torch.randn(N, 1, d, dtype=dt)).requires_grad_()

    def f(q, k, v, lr, log_eta, log_decay, W1, W2, S1, S2, lw, lb):
        y, W, S = chunked_memory(q, k, v, [lr[..., :1], lr[..., 1:]], [log_eta[..., :1], log_eta[..., 1:]],
                                 [log_decay[..., :1], log_decay[..., 1:]], [W1, W2], [S1, S2], chunk_size=4,
                                 activation="gelu", ln_weight=lw, ln_bias=lb, commit_partial=True)
        return y, W[0], W[1], S[0], S[1]

    assert torch.autograd.gradcheck(f, (q, k, v, lr, log_eta, log_decay, W1, W2, S1, S2, lw, lb), atol=1e-6,
                                      fast_mode=True)


def test_gradcheck_layer():
    mem = make_mem(dim=4, num_heads=1, chunk_size=3)
    x = torch.randn(1, 7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: mem(x)[0], (x,), atol=1e-6, fast_mode=True)


def test_outer_gradients_reach_every_parameter():
    """The inner loop is not detached: the loss reaches W_Q, W_K, W_V, the gates, M_0 and the conv."""
    mem = make_mem(dtype=torch.float32, dim=16, chunk_size=4, channelwise_alpha=True)
    x = torch.randn(2, 13, 16)
    y, state = mem(x)
    # the loss only looks at late tokens, so M_0 etc. influence it only through the inner updates
    (y[:, 8:].pow(2).sum() + state.weights[0].sum()).backward()
    D = mem.inner_dim
    g = mem.qkv_proj.weight.grad
    for name, part in (("W_Q", g[:D]), ("W_K", g[D : 2 * D]), ("W_V", g[2 * D :])):
        assert part.abs().sum() > 0, name
    for name, p in mem.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    n = mem.gates
    bias_grad = n.bias.grad
    assert bias_grad[:, : n.n_lr].abs().sum() > 0  # theta
    assert bias_grad[:, n.n_lr : n.n_lr + n.n_eta].abs().sum() > 0  # eta
    assert bias_grad[:, n.n_lr + n.n_eta :].abs().sum() > 0  # alpha


def test_keys_and_values_matter_only_through_the_inner_update():
    """Changing W_K changes outputs (the write path is in the graph), for a matrix and a deep memory."""
    for depth in (1, 2):
        mem = make_mem(depth=depth)
        x = torch.randn(1, 8, 8, dtype=torch.float64)
        y, _ = mem(x)
        with torch.no_grad():
            mem.qkv_proj.weight[mem.inner_dim : 2 * mem.inner_dim] *= 1.5
        y2, _ = mem(x)
        assert not torch.allclose(y[:, 1:], y2[:, 1:])


def test_retrieve_reads_current_weights_without_update():
    mem = make_mem()
    x = torch.randn(2, 10, 8, dtype=torch.float64)  # 10 = 2 chunks + 2 buffered tokens
    _, state = mem(x)
    snapshot = state.map(lambda t: t.clone())
    xr = torch.randn(2, 5, 8, dtype=torch.float64)
    read = mem.read_state(state)
    h, read2 = mem.retrieve(xr, read)
    # the write stream (M/S, the chunk buffer, its conv cache) is untouched; reading keeps the weights it reads
    assert_states_close(state, snapshot, tol=0)
    assert all(a is b for a, b in zip(read2.weights, read.weights))
    assert not torch.equal(read2.conv_cache, read.conv_cache)
    # equals the memory after all 10 tokens (the partial chunk finished, see the next tests), applied read-only to q
    W = mem.current_weights(state)
    q, _ = mem.project_query(xr, torch.zeros_like(read.conv_cache))
    B, H, T, D = q.shape
    Wf = [w.reshape(B * H, *w.shape[2:]) for w in W]
    lw, lb = mem._ln_params(B, torch.float64)
    ref = mem.output(mlp.memory_forward(Wf, q.reshape(B * H, T, D), "gelu", lw, lb, mem.cfg.ln_eps).view(B, H, T, D), xr)
    assert torch.allclose(h, ref, atol=1e-12)
    assert state.chunk_pos == 2
    # writes after a retrieve are unaffected by it (separate conv caches)
    x3 = torch.randn(2, 3, 8, dtype=torch.float64)
    y_a, _ = mem(x3, state)
    y_b, _ = mem(x3, snapshot)
    assert torch.equal(y_a, y_b)


def test_retrieve_on_chunk_boundary_uses_state_weights():
    mem = make_mem()
    x = torch.randn(1, 8, 8, dtype=torch.float64)
    _, state = mem(x)
    assert state.chunk_pos == 0
    assert all(a is b for a, b in zip(mem.current_weights(state), state.weights))
    # retrieve streaming: two pieces == one call (its own conv cache carries over)
    xr = torch.randn(1, 6, 8, dtype=torch.float64)
    read = mem.read_state(state)
    h, _ = mem.retrieve(xr, read)
    h1, r1 = mem.retrieve(xr[:, :2], read)
    h2, _ = mem.retrieve(xr[:, 2:], r1)
    assert torch.allclose(torch.cat([h1, h2], 1), h, atol=1e-12)
    # a new read of a later state continues the query stream of the previous read
    _, later = mem(torch.randn(1, 3, 8, dtype=torch.float64), state)
    assert torch.equal(mem.read_state(later, r1).conv_cache, r1.conv_cache)


def test_current_weights_match_finishing_the_chunk():
    """current_weights of a state with a partial chunk == the state after a call that completes that chunk
    with tokens whose learning rate is 0 and gates are neutral (no momentum so nothing else moves)."""
    mem = make_mem(momentum=False)
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    _, state = mem(x)
    W = mem.current_weights(state)
    lr = torch.cat([state.buf_lr, torch.zeros_like(state.buf_lr)], 2)
    ld = torch.cat([state.buf_log_decay, torch.zeros_like(state.buf_log_decay)], 2)
    kk = torch.cat([state.buf_k, state.buf_k], 2)
    vv = torch.cat([state.buf_v, state.buf_v], 2)
    from titans.memory.gates import Gates
    _, W_ref, _ = mem._run(torch.zeros_like(kk), kk, vv, Gates(lr, None, ld), state)
    for a, b in zip(W, W_ref):
        assert torch.allclose(a, b, atol=1e-12)


def test_state_map_reorders_batch():
    mem = make_mem()
    x = torch.randn(3, 6, 8, dtype=torch.float64)
    y, state = mem(x)
    idx = torch.tensor([2, 0, 1])
    x2 = torch.randn(3, 3, 8, dtype=torch.float64)
    y_next, _ = mem(x2, state)
    y_perm, _ = mem(x2[idx], state.map(lambda t: t.index_select(0, idx)))
    assert torch.allclose(y_perm, y_next[idx], atol=1e-12)
    det = state.detach()
    assert all(not t.requires_grad for t in det.tensors())


def test_samples_are_independent():
    mem = make_mem()
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    y, _ = mem(x)
    y0, _ = mem(x[:1])
    assert torch.allclose(y[:1], y0, atol=1e-12)


def test_autocast_bf16_keeps_memory_in_float32(tol_seed):
    mem = make_mem(dtype=torch.float32, dim=16)
    x = torch.randn(2, 20, 16, generator=torch.Generator().manual_seed(tol_seed))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, state = mem(x)
        h, _ = mem.retrieve(x, mem.read_state(state))
    assert torch.isfinite(y.float()).all() and torch.isfinite(h.float()).all()
    assert all(t.dtype == torch.float32 for t in state.weights + state.momentum + [state.buf_k])
    y.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in mem.parameters() if p.grad is not None)
    with torch.no_grad():
        y32, _ = mem(x)
        y64, _ = float64_copy(mem)(x.double())
    # bf16 autocast rounds every projection's inputs to bf16 (the memory state stays float32): the floor of
    # 2 bf16 eps x max|y|, 8x (tests/numerics.py); the float32 output is the reference
    assert_within_reference_error(y.float(), y64, y32, dtype=torch.bfloat16, ulps=2)


# docs/design.md, "Linear-memory baselines": the rule each preset follows, stated once
PRESET_RULE = {  # name -> (matrix memory, momentum eta_t, forgetting alpha_t)
    "titans": (False, True, True), "deltanet": (True, False, False), "gated_deltanet": (True, False, True),
    "ttt": (False, False, False),
}


def test_each_preset_builds_the_memory_its_rule_says():
    assert set(PRESETS) == set(PRESET_RULE)
    for name, (matrix, momentum, forgetting) in PRESET_RULE.items():
        mem = NeuralMemory(8, MemoryConfig.preset(name, num_heads=2))
        assert (len(mem.layer_shapes) == 1) == matrix, name
        assert (mem.gates.n_eta > 0) == momentum and (mem.gates.n_alpha > 0) == forgetting, name
        _, state = mem(torch.randn(1, 5, 8))
        assert (state.momentum != []) == momentum, name  # no momentum state without eta
        assert (state.buf_log_decay is not None) == forgetting, name


def test_config_presets_and_errors():
    assert MemoryConfig.preset("titans") == MemoryConfig()
    assert MemoryConfig.preset("ttt", chunk_size=64).chunk_size == 64
    assert MemoryConfig(**MemoryConfig().to_dict()) == MemoryConfig()
    with pytest.raises(TypeError):
        MemoryConfig(**{"num_heads": 2, "no_such_key": 1})
    with pytest.raises(ValueError, match="depth"):
        MemoryConfig(depth=5)
    with pytest.raises(ValueError, match="activation"):
        MemoryConfig(activation="swish2")
    with pytest.raises(ValueError, match="preset"):
        MemoryConfig.preset("mamba")
    with pytest.raises(ValueError, match="divisible"):
        NeuralMemory(10, MemoryConfig(num_heads=4))
    with pytest.raises(TypeError, match="MemoryConfig"):
        NeuralMemory(8, {"num_heads": 2, "depth": 1})
    mem = NeuralMemory(8, MemoryConfig(num_heads=2, depth=1))
    with pytest.raises(ValueError, match="shape"):
        mem(torch.randn(2, 5, 7))
    _, state = mem(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="batch"):
        mem(torch.randn(3, 5, 8), state)


@pytest.mark.numerics
def test_gate_ranges_and_init():
    cfg = MemoryConfig(num_heads=2, max_lr=0.2, theta_init=0.05, eta_init=0.6, alpha_init=0.02)
    mem = NeuralMemory(8, cfg)
    g = mem.gates(torch.zeros(1, 3, 8))
    # float32 bias and a few float32 roundings (tests/numerics.py: the floor alone); 1 - exp(log(1 - alpha))
    # subtracts numbers of size 1, so its rounding is relative to 1, not to alpha = 0.02
    assert_within_reference_error(g.lr, torch.full_like(g.lr, 0.05, dtype=torch.float64), what="theta")
    assert_within_reference_error(g.log_eta.exp(), torch.full_like(g.log_eta, 0.6, dtype=torch.float64), what="eta")
    alpha = 1 - g.log_decay.exp()
    assert_within_reference_error(alpha, torch.full_like(alpha, 0.02, dtype=torch.float64), scale=1.0, what="alpha")
    g = mem.gates(100 * torch.randn(1, 50, 8))
    assert (g.lr > 0).all() and (g.lr <= 0.2).all()
    assert torch.isfinite(g.log_eta).all() and torch.isfinite(g.log_decay).all()
    assert g.lr.shape == (1, 2, 50, 2)  # per head, per memory layer


def test_checkpoint_group_gives_same_values_and_gradients():
    x = torch.randn(2, 23, 8, dtype=torch.float64)
    results = []
    for group in (0, 2):
        mem = make_mem(checkpoint_group=group)
        y, state = mem(x)
        (y.pow(2).sum() + state.weights[1].sum()).backward()
        results.append((y.detach(), {n: p.grad.clone() for n, p in mem.named_parameters()}))
    (y0, g0), (y1, g1) = results
    assert torch.allclose(y0, y1, atol=1e-12)
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-10), name


@pytest.mark.parametrize("kw", [dict(conv_kernel=1), dict(depth=4, activation="silu"), dict(head_dim=3),
                                dict(qk_l2norm=False, depth=1), dict(use_conv=False, momentum=False)])
def test_config_variants_stream_and_stay_causal(kw):
    mem = make_mem(**kw)
    x = torch.randn(1, 9, 8, dtype=torch.float64)
    y, s_full = mem(x)
    y1, s = mem(x[:, :4])
    y2, s = mem(x[:, 4:], s)
    assert torch.allclose(torch.cat([y1, y2], 1), y, atol=1e-10)
    assert_states_close(s, s_full)
    x2 = x.clone()
    x2[:, 6] += 1.0
    assert torch.equal(mem(x2)[0][:, :6], y[:, :6])
