"""Shared problems for the memory scan's tests (a helper module: test modules import it, never each other)."""

from __future__ import annotations

import torch

from titans.memory import memory_scan


def decay_target_gradcheck_problem(depth: int, backend: str | None = None):
    """(f, inputs) for ``torch.autograd.gradcheck``: a float64 scan of depth 1 or 2 with momentum, forgetting toward
    a decay target, a partial last chunk and checkpoint groups, differentiated in every input (the target included).
    ``backend`` None lets ``memory_scan`` choose (the torch scan on CPU)."""
    torch.manual_seed(3)
    N, T, d = 2, 7, 3
    nrm = torch.nn.functional.normalize
    q = nrm(torch.randn(N, T, d), dim=-1).requires_grad_()
    k = nrm(torch.randn(N, T, d), dim=-1).requires_grad_()
    v = torch.randn(N, T, d, requires_grad=True)
    lr = (0.2 * torch.rand(N, T, depth)).requires_grad_()
    log_eta = torch.rand(N, T, depth).log().requires_grad_()
    log_decay = torch.log1p(-0.3 * torch.rand(N, T, depth)).requires_grad_()
    dims = [(d, d)] if depth == 1 else [(d, 2 * d), (2 * d, d)]
    W = [torch.randn(N, a, b).div(a ** 0.5).requires_grad_() for a, b in dims]
    S = [(0.1 * torch.randn(N, a, b)).requires_grad_() for a, b in dims]
    Tg = [torch.randn(N, a, b).div(a ** 0.5).requires_grad_() for a, b in dims]
    lw = (1 + 0.1 * torch.randn(N, 1, d)).requires_grad_()
    lb = (0.1 * torch.randn(N, 1, d)).requires_grad_()
    extra = {} if backend is None else {"backend": backend}

    def f(q, k, v, lr, log_eta, log_decay, lw, lb, *state):
        W_, S_, T_ = state[:depth], state[depth:2 * depth], state[2 * depth:]

        def split(t):
            return [t[..., i:i + 1] for i in range(depth)]

        y, Wn, Sn = memory_scan(q, k, v, split(lr), split(log_eta), split(log_decay), list(W_), list(S_),
                                chunk_size=3, activation="gelu", ln_weight=lw if depth > 1 else None,
                                ln_bias=lb if depth > 1 else None, commit_partial=True, checkpoint_group=2,
                                decay_target=list(T_), **extra)
        return (y, *Wn, *Sn)

    return f, (q, k, v, lr, log_eta, log_decay, lw, lb, *W, *S, *Tg)


def leaves(prob) -> list:
    """The tensors of a problem (``make_problem``'s tuple, lists of per-layer tensors flattened)."""
    return [t for x in prob for t in (x if isinstance(x, list) else [x])]


def run_scan(op, prob, chunk, momentum, decay, act, commit, **kw):
    """``op`` (``chunked_memory`` or ``memory_scan``) on the first ten entries of a problem: momentum and forgetting
    switched by ``momentum`` / ``decay`` (their gates turned into the log-space arguments)."""
    q, k, v, theta, eta, alpha, W0, S0, ln_w, ln_b = prob[:10]
    return op(q, k, v, theta, [e.log() for e in eta] if momentum else None,
              [torch.log1p(-a) for a in alpha] if decay else None, W0, S0 if momentum else None,
              chunk_size=chunk, activation=act, ln_weight=ln_w, ln_bias=ln_b, ln_eps=1e-5, commit_partial=commit,
              **kw)


def outputs_and_grads(op, prob, wrt, chunk, momentum, decay, act, commit, **kw):
    """(y and the final state, the gradients of a fixed random linear function of them with respect to ``wrt``)."""
    y, W, S = run_scan(op, prob, chunk, momentum, decay, act, commit, **kw)
    outs = [y] + W + (S or [])
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
    return outs, torch.autograd.grad(loss, wrt, allow_unused=True)
