"""The fast chunked memory op against a slow oracle (tests/memory_oracle.py), independent of titans.memory's own code.

The oracle loops over tokens, takes torch.autograd.grad of the inner loss ||M(k_t) - v_t||^2 at the chunk-start
weights and applies paper eqs. 13-14 literally; y_t = M_t(q_t) (write-then-read). With a decay target T (the
default rule, ``decay_target="init"`` with T = M_0) eq. 13 acts on M - T: M_t - T = (1 - alpha_t)(M_{t-1} - T) + S_t.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from memory_oracle import EPS, make_problem, make_target, oracle, run_op, run_oracle, shapes
from titans.memory import MemoryConfig, NeuralMemory, chunked_memory, naive_memory


# every tensor of these tests is float64 (the default dtype is restored afterwards)
pytestmark = pytest.mark.usefixtures("single_thread", "float64_default")


def assert_close(a, b, tol=1e-9):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert err < tol * (1 + b.abs().max().item()), f"max abs error {err}"


@pytest.mark.parametrize("with_target", [False, True], ids=["decay_to_zero", "decay_to_target"])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("chunk", [1, 4, 5])
def test_chunked_matches_oracle(depth, chunk, with_target):
    prob = make_problem(depth=depth, seed=depth * 10 + chunk)
    target = make_target(prob) if with_target else None
    y, W, S = run_op(chunked_memory, prob, chunk, target=target)
    y_ref, W_ref, S_ref = run_oracle(prob, chunk, target=target)
    assert_close(y, y_ref)
    for a, b in zip(W, W_ref):
        assert_close(a, b)
    for a, b in zip(S, S_ref):
        assert_close(a, b)


@pytest.mark.parametrize("with_target", [False, True], ids=["decay_to_zero", "decay_to_target"])
@pytest.mark.parametrize("momentum,decay", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("depth", [1, 2])
def test_ablations_match_oracle(depth, momentum, decay, with_target):
    prob = make_problem(depth=depth, T=11, seed=3)
    target = make_target(prob) if with_target else None
    y, W, S = run_op(chunked_memory, prob, 4, momentum=momentum, decay=decay, target=target)
    y_ref, W_ref, _ = run_oracle(prob, 4, momentum=momentum, decay=decay, target=target)
    assert (S is None) == (not momentum)
    assert_close(y, y_ref)
    for a, b in zip(W, W_ref):
        assert_close(a, b)


@pytest.mark.parametrize("with_target", [False, True], ids=["decay_to_zero", "decay_to_target"])
def test_channelwise_decay_matches_oracle(with_target):
    prob = make_problem(depth=2, T=12, channelwise=True, seed=5)
    target = make_target(prob) if with_target else None
    y, W, S = run_op(chunked_memory, prob, 4, target=target)
    y_ref, W_ref, S_ref = run_oracle(prob, 4, target=target)
    assert_close(y, y_ref)
    for a, b in zip(W + S, W_ref + S_ref):
        assert_close(a, b)


@pytest.mark.parametrize("act,fn", [("silu", F.silu), ("relu", F.relu), ("tanh", torch.tanh)])
def test_other_activations_match_oracle(act, fn):
    prob = make_problem(depth=2, T=9, seed=7)
    y, _, _ = run_op(chunked_memory, prob, 3, act=act)
    y_ref, _, _ = run_oracle(prob, 3, act=fn)
    assert_close(y, y_ref)


@pytest.mark.parametrize("with_target", [False, True], ids=["decay_to_zero", "decay_to_target"])
@pytest.mark.parametrize("depth", [1, 2])
def test_package_naive_matches_oracle(depth, with_target):
    prob = make_problem(depth=depth, seed=11)
    target = make_target(prob) if with_target else None
    y, W, S = run_op(naive_memory, prob, 4, target=target)
    y_ref, W_ref, S_ref = run_oracle(prob, 4, target=target)
    assert_close(y, y_ref)
    for a, b in zip(W + S, W_ref + S_ref):
        assert_close(a, b)


def test_commit_partial_gives_state_after_last_token():
    prob = make_problem(depth=2, T=10, seed=2)
    _, W, S = run_op(chunked_memory, prob, 4, commit_partial=True)
    q, k, v, theta, eta, alpha, W0, S0, ln_w, ln_b = prob
    # oracle with a chunk boundary forced after the last token: run T tokens, read its final state
    T = k.shape[1]
    _, W_ref, S_ref = oracle(q, k, v, theta, eta, alpha, W0, S0, 4, F.gelu, ln_w, ln_b) if T % 4 == 0 else \
        oracle(*[torch.cat([x, x[:, :2]], 1) for x in (q, k, v)], [torch.cat([x, 0 * x[:, :2]], 1) for x in theta],
               [torch.cat([x, 0 * x[:, :2] + 1], 1) for x in eta], [torch.cat([x, 0 * x[:, :2]], 1) for x in alpha],
               W0, S0, 4, F.gelu, ln_w, ln_b)
    # the two padded tokens have theta = 0, eta = 1, alpha = 0: S is unchanged but W moves by S twice
    for a, b, s in zip(W, W_ref, S_ref):
        assert_close(a + 2 * s, b)
    for a, b in zip(S, S_ref):
        assert_close(a, b)


@pytest.mark.parametrize("decay_target", ["init", "zero"])
def test_layer_matches_oracle_end_to_end(decay_target):
    """NeuralMemory.forward == output path applied to the oracle's reads of the layer's own q, k, v, gates;
    forgetting decays toward the layer's M_0 ("init", the default) or toward zero (eq. 13 as printed)."""
    torch.manual_seed(0)
    cfg = MemoryConfig(num_heads=2, depth=2, expansion=2, chunk_size=4, theta_init=0.05, alpha_init=0.2,
                       decay_target=decay_target)
    mem = NeuralMemory(8, cfg).double()
    with torch.no_grad():
        mem.gates.proj.weight.normal_(std=0.5)  # make gates clearly token-dependent
        mem.ln_weight.add_(0.1 * torch.randn_like(mem.ln_weight))
    x = torch.randn(2, 10, 8)
    y, _ = mem(x)
    state = mem.init_state(2)
    q, k, v, gates, _ = mem.project(x, state.conv_cache)
    B, H, T, D = q.shape
    fl = lambda t: t.reshape(B * H, T, t.shape[-1])  # noqa: E731
    theta = [fl(gates.lr)[..., i : i + 1] for i in range(2)]
    eta = [fl(gates.log_eta).exp()[..., i : i + 1] for i in range(2)]
    alpha = [1 - fl(gates.log_decay).exp()[..., i : i + 1] for i in range(2)]
    W0 = [w.unsqueeze(0).expand(B, *w.shape).reshape(B * H, *w.shape[1:]) for w in mem.init_weights]
    S0 = [torch.zeros_like(w) for w in W0]
    ln_w = mem.ln_weight.unsqueeze(0).expand(B, H, D).reshape(B * H, 1, D)
    ln_b = mem.ln_bias.unsqueeze(0).expand(B, H, D).reshape(B * H, 1, D)
    target = [w.clone() for w in W0] if decay_target == "init" else None
    y_mem, _, _ = oracle(fl(q), fl(k), fl(v), theta, eta, alpha, W0, S0, 4, F.gelu, ln_w, ln_b, target=target)
    y_ref = mem.output(y_mem.view(B, H, T, D), x)
    assert_close(y, y_ref)


@pytest.mark.parametrize("depth", [1, 2])
def test_repeated_pairs_drive_inner_loss_to_zero(depth):
    """Storing the same few key/value pairs over and over makes the memory fit them (momentum, decay, chunk 4).

    The deep memory x + gamma*LN(.) + beta can only produce outputs whose residual has the LN's fixed scale,
    so its targets are built inside that range (v = k + LN(noise)); the matrix memory takes any values."""
    g = torch.Generator().manual_seed(0)
    N, d, P, reps = 2, 8, 4, 60
    keys = F.normalize(torch.randn(N, P, d, generator=g), dim=-1)
    noise = torch.randn(N, P, d, generator=g)
    if depth == 1:
        keys = torch.linalg.qr(torch.randn(N, d, d, generator=g))[0][:, :P]  # orthonormal keys
        vals = noise
    else:
        vals = keys + F.layer_norm(noise, (d,))
    k = keys.repeat(1, reps, 1)
    v = vals.repeat(1, reps, 1)
    T = k.shape[1]
    sh = shapes(d, depth, expansion=4)
    W0 = [torch.randn(N, di, do, generator=g) / (1 if i == 0 else math.sqrt(di)) for i, (di, do) in enumerate(sh)]
    S0 = [torch.zeros(N, di, do) for di, do in sh]
    lr = [torch.full((N, T, 1), 0.02) for _ in sh]
    log_eta = [torch.full((N, T, 1), math.log(0.5)) for _ in sh]
    log_decay = [torch.full((N, T, 1), math.log(1 - 1e-4)) for _ in sh]
    ln_w, ln_b = torch.ones(N, 1, d), torch.zeros(N, 1, d)

    def inner_loss(W):
        return (oracle_net_batched(W, keys, ln_w, ln_b) - vals).pow(2).sum(-1).mean().item()

    _, W, _ = chunked_memory(k, k, v, lr, log_eta, log_decay, W0, S0, chunk_size=4, activation="gelu",
                             ln_weight=ln_w, ln_bias=ln_b, ln_eps=EPS)
    before, after = inner_loss(W0), inner_loss(W)
    assert after < 1e-3 * before, (before, after)
    assert after < 1e-2


def oracle_net_batched(weights, x, ln_w, ln_b):
    h = x
    if len(weights) == 1:
        return x @ weights[0]
    for i, w in enumerate(weights):
        h = h @ w
        if i < len(weights) - 1:
            h = F.gelu(h)
    return x + ln_w * F.layer_norm(h, h.shape[-1:], eps=EPS) + ln_b


@pytest.mark.parametrize("chunk", [1, 4])
def test_depth1_eta0_is_gated_delta_rule(chunk):
    """Depth 1, eta = 0: W_t = a_t W_{t-1} - beta_t k_t (k_t^T W_{t'} - v_t^T), beta_t = 2 theta_t (sum-scaled loss).
    With chunk 1 and a_t = 1 this is DeltaNet's S_t = S_{t-1}(I - beta_t k_t k_t^T) + beta_t v_t k_t^T."""
    g = torch.Generator().manual_seed(1)
    N, T, d = 2, 12, 5
    q = F.normalize(torch.randn(N, T, d, generator=g), dim=-1)
    k = F.normalize(torch.randn(N, T, d, generator=g), dim=-1)
    v = torch.randn(N, T, d, generator=g)
    theta = 0.4 * torch.rand(N, T, 1, generator=g)
    a = 1 - 0.2 * torch.rand(N, T, 1, generator=g)
    W0 = torch.randn(N, d, d, generator=g)
    y, (W_end,), _ = chunked_memory(q, k, v, [theta], None, [a.log()], [W0], None, chunk_size=chunk, activation="gelu")
    # by hand
    W = W0.clone()
    outs = []
    for t in range(T):
        if t % chunk == 0:
            Wc = W.clone()
        beta = 2 * theta[:, t, :, None]
        kt, vt = k[:, t, :, None], v[:, t, :, None]  # column vectors
        W = a[:, t, :, None] * W - beta * kt @ (kt.transpose(1, 2) @ Wc - vt.transpose(1, 2))
        outs.append((q[:, t, None, :] @ W)[:, 0])
    assert_close(y, torch.stack(outs, 1))
    assert_close(W_end, W)
    if chunk == 1:  # DeltaNet (a = 1) in its usual column-vector form S = W^T
        y1, _, _ = chunked_memory(q, k, v, [theta], None, None, [W0], None, chunk_size=1, activation="gelu")
        S = W0.transpose(1, 2).clone()
        outs = []
        eye = torch.eye(d)
        for t in range(T):
            beta = 2 * theta[:, t, :, None]
            kt, vt = k[:, t, :, None], v[:, t, :, None]
            S = S @ (eye - beta * kt @ kt.transpose(1, 2)) + beta * vt @ kt.transpose(1, 2)
            outs.append((S @ q[:, t, :, None])[..., 0])
        assert_close(y1, torch.stack(outs, 1))
