"""The float64 oracle of the memory and its random problems, shared by the memory's tests (a helper module: test
modules import it, never each other). Independent of titans.memory's own code.

The oracle loops over tokens, takes torch.autograd.grad of the inner loss ||M(k_t) - v_t||^2 at the chunk-start
weights and applies paper eqs. 13-14 literally; y_t = M_t(q_t) (write-then-read). With a decay target T (the
default rule, ``decay_target="init"`` with T = M_0) eq. 13 acts on M - T: M_t - T = (1 - alpha_t)(M_{t-1} - T) + S_t.
test_memory_oracle.py checks the chunked op against it; test_memory_scan.py and test_memory_fused_cpu.py take its
problems.
"""

import math

import torch
import torch.nn.functional as F

EPS = 1e-5


def oracle_net(weights, x, act, ln_w, ln_b):
    """M(x) for weights [N, d_in, d_out] and x [N, d]; depth 1 = matrix, else x + LN(...) (affine ln_w, ln_b)."""
    h = x
    for i, w in enumerate(weights):
        h = torch.einsum("ni,nio->no", h, w)
        if i < len(weights) - 1:
            h = act(h)
    if len(weights) == 1:
        return h
    return x + ln_w[:, 0] * F.layer_norm(h, h.shape[-1:], eps=EPS) + ln_b[:, 0]


def oracle(q, k, v, theta, eta, alpha, W0, S0, chunk, act, ln_w=None, ln_b=None, target=None):
    """theta/eta/alpha: per layer [N, T, C] (C = 1 or d_out) gate values (not logs); target: per layer, the
    weights forgetting decays toward (None: zero, eq. 13 as printed)."""
    N, T, _ = k.shape
    W = [w.clone() for w in W0]
    S = [s.clone() for s in S0]
    ys, boundary = [], None
    for t in range(T):
        if t % chunk == 0:
            boundary = ([w.clone() for w in W], [s.clone() for s in S])
            W_start = [w.detach().clone().requires_grad_(True) for w in W]
        loss = (oracle_net(W_start, k[:, t], act, ln_w, ln_b) - v[:, t]).pow(2).sum()
        grads = torch.autograd.grad(loss, W_start)
        for layer, g in enumerate(grads):
            S[layer] = eta[layer][:, t, :, None] * S[layer] - theta[layer][:, t, :, None] * g
            T_l = 0 if target is None else target[layer]
            W[layer] = T_l + (1 - alpha[layer][:, t])[:, None, :] * (W[layer] - T_l) + S[layer]
        ys.append(oracle_net(W, q[:, t], act, ln_w, ln_b))
    if T % chunk == 0:
        boundary = (W, S)
    return torch.stack(ys, 1), boundary[0], boundary[1]


def shapes(d, depth, expansion=2):
    if depth == 1:
        return [(d, d)]
    dims = [d] + [expansion * d] * (depth - 1) + [d]
    return list(zip(dims[:-1], dims[1:]))


def make_problem(N=3, T=13, d=4, depth=2, channelwise=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    q = F.normalize(r(N, T, d), dim=-1)
    k = F.normalize(r(N, T, d), dim=-1)
    v = r(N, T, d)
    sh = shapes(d, depth)
    W0 = [r(N, di, do) / math.sqrt(di) * (1.5 if i == 0 and depth > 1 else 1.0) for i, (di, do) in enumerate(sh)]
    S0 = [0.1 * r(N, di, do) for di, do in sh]
    theta = [0.3 * torch.rand(N, T, 1, generator=g) for _ in sh]
    eta = [torch.rand(N, T, 1, generator=g) for _ in sh]
    alpha = [0.3 * torch.rand(N, T, do if channelwise else 1, generator=g) for _, do in sh]
    ln_w = 1 + 0.1 * r(N, 1, d)
    ln_b = 0.1 * r(N, 1, d)
    return q, k, v, theta, eta, alpha, W0, S0, ln_w, ln_b


def make_target(prob, seed=0):
    """A decay target per layer, unrelated to the initial state (so a test cannot mix the two up)."""
    g = torch.Generator().manual_seed(100 + seed)
    return [torch.randn(w.shape, generator=g) / math.sqrt(w.shape[1]) for w in prob[6]]


def run_op(op, prob, chunk, momentum=True, decay=True, act="gelu", commit_partial=False, target=None):
    q, k, v, theta, eta, alpha, W0, S0, ln_w, ln_b = prob
    return op(q, k, v, theta, [e.log() for e in eta] if momentum else None,
              [torch.log1p(-a) for a in alpha] if decay else None, W0, S0 if momentum else None,
              chunk_size=chunk, activation=act, ln_weight=ln_w, ln_bias=ln_b, ln_eps=EPS,
              commit_partial=commit_partial, decay_target=target)


def run_oracle(prob, chunk, momentum=True, decay=True, act=F.gelu, target=None):
    q, k, v, theta, eta, alpha, W0, S0, ln_w, ln_b = prob
    if not momentum:
        eta = [torch.zeros_like(e) for e in eta]
        S0 = [torch.zeros_like(s) for s in S0]
    if not decay:
        alpha = [torch.zeros_like(a) for a in alpha]
    return oracle(q, k, v, theta, eta, alpha, W0, S0, chunk, act, ln_w, ln_b, target=target)
