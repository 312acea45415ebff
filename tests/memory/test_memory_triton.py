"""The Triton kernels of the memory scan (titans.memory.triton) against the torch scan (titans.memory.scan).

On CPU the kernels run in the Triton interpreter (TRITON_INTERPRET=1, set per test; the kernel module is decorated
for the interpreter separately from the GPU copy, so both can run in one process). float64: outputs, final state
and the gradient of every input equal the torch scan's to 1e-10. float32 and bf16 are bounded by rounding, not by a
constant (tests/numerics.py): the kernels' distance to the float64 answer is at most KERNEL_FACTOR (the gates'
gradients: GATE_GRADIENT_FACTOR) times the float32 torch scan's own distance to it (or 8 eps times the tensor's
size); bf16 inputs (float32 state) likewise against
the torch scan on the same rounded values, and against the float32 inputs before rounding. Hidden/column tiles of
16 so that every pass loops over several tiles.
Both forgetting rules: toward zero (no ``decay_target``, eq. 13 as printed) and toward a target T (the layer's
decay_target="init", T = M_0; here an independent random T, so that its gradient is checked on its own).
The ``gpu`` tests run the compiled kernels on CUDA (skipped without one): scripts/gpu_check.sh runs them.
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from titans.memory import MemoryConfig, NeuralMemory, memory_scan  # noqa: E402
from titans.memory import dispatch  # noqa: E402
from titans.memory.scan import MemoryScan  # noqa: E402
from titans.memory.triton import op  # noqa: E402
from numerics import assert_within_reference_error  # noqa: E402

CUDA = torch.cuda.is_available()
# The kernels' float32 error may be this many times the float32 torch scan's (tests/numerics.py); measured over
# 50 seeds (scripts/check_tolerances.py, experiments/results/tolerances/): values, state and the gradients of
# q, k, v, M_0, S_0 and the LN affine up to 7x (depth 2, the LN bias), so 40 leaves a margin above 5.
KERNEL_FACTOR = 40.0
# The gradients of the gates (theta, eta, alpha: one number per token, a sum over the chunk's d x d products)
# are the kernels' weak spot: at the first token of a chunk the depth-1 eta gradient was 38x the torch scan's
# error in one seed of 50 (problem seed 37, token 16: 3.8e-4 against 1.5e-6), 6x at most in the others.
GATE_GRADIENT_FACTOR = 128.0
GATES = ("theta", "eta", "alpha")


@pytest.fixture
def interp(monkeypatch, single_thread):
    """Kernels in the interpreter with 16-wide tiles (several tiles per pass at head_dim 16-32)."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(op, "DEFAULT_TILE", 16)


def problem(N=2, T=40, d=16, depth=2, channelwise=False, dtype=torch.float64, seed=0, device="cpu", target=False):
    """Unit-norm q, k; gates per layer (theta, eta, alpha values); a random M_0, S_0 and LN affine; with ``target``
    a random decay target per layer (key "T"; drawn last, so the rest of the problem does not change)."""
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64)

    def u(*s):
        return torch.rand(*s, generator=g, dtype=torch.float64)

    shapes = [(d, d)] if depth == 1 else [(d, 4 * d), (4 * d, d)]
    prob = dict(q=F.normalize(r(N, T, d), dim=-1), k=F.normalize(r(N, T, d), dim=-1), v=r(N, T, d),
                theta=[0.3 * u(N, T, 1) for _ in shapes], eta=[u(N, T, 1) for _ in shapes],
                alpha=[0.3 * u(N, T, do if channelwise else 1) for _, do in shapes],
                W0=[r(N, di, do) / math.sqrt(di) * (1.5 if i == 0 and depth > 1 else 1.0)
                    for i, (di, do) in enumerate(shapes)],
                S0=[0.1 * r(N, di, do) for di, do in shapes], ln_w=1 + 0.1 * r(N, 1, d), ln_b=0.1 * r(N, 1, d))
    if target:
        prob["T"] = [r(N, di, do) / math.sqrt(di) for di, do in shapes]

    def leaf(t):
        return t.to(device=device, dtype=dtype).requires_grad_()

    return {k: [leaf(t) for t in v] if isinstance(v, list) else leaf(v) for k, v in prob.items()}


def leaves(prob):
    return [t for v in prob.values() for t in (v if isinstance(v, list) else [v])]


def leaf_names(prob):
    """Names of ``leaves(prob)``: "q", "theta[0]", ..."""
    return [f"{k}[{i}]" if isinstance(v, list) else k for k, v in prob.items()
            for i in range(len(v) if isinstance(v, list) else 1)]


def run(prob, backend, chunk=16, momentum=True, decay=True, act="gelu", commit=False, group=0):
    p = prob
    deep = len(p["W0"]) > 1
    return memory_scan(p["q"], p["k"], p["v"], p["theta"], [e.log() for e in p["eta"]] if momentum else None,
                       [torch.log1p(-a) for a in p["alpha"]] if decay else None, p["W0"],
                       p["S0"] if momentum else None, chunk_size=chunk, activation=act,
                       ln_weight=p["ln_w"] if deep else None, ln_bias=p["ln_b"] if deep else None,
                       commit_partial=commit, checkpoint_group=group, decay_target=p.get("T"), backend=backend)


def values_and_grads(prob, backend, **kw):
    y, W, S = run(prob, backend, **kw)
    outs = [y] + W + (S or [])
    g = torch.Generator().manual_seed(1)
    # the same (float32-representable) weights at every precision
    loss = sum((o * torch.randn(o.shape, generator=g).to(o)).sum() for o in outs)
    return outs, torch.autograd.grad(loss, leaves(prob), allow_unused=True)


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / (1 + b.double().abs().max())).item()


def assert_match(prob, tol, **kw):
    """The triton backend on a float64 ``prob`` against the torch backend: equal to ``tol`` (rel_err). The kernels
    must run (no fallback warning)."""
    assert prob["q"].dtype == torch.float64
    outs_ref, g_ref = values_and_grads(prob, "torch", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs, g = values_and_grads(prob, "triton", **kw)
    assert len(outs) == len(outs_ref)
    for a, b in zip(outs, outs_ref):
        assert a.shape == b.shape and a.dtype == torch.float64
        assert rel_err(a, b) <= tol, "values differ"
    assert len(_used_pairs(g, g_ref, torch.float64)) >= 5  # q, k, v, theta and the state at least
    for a, b in _used_pairs(g, g_ref, torch.float64):
        assert rel_err(a, b) <= tol, "gradients differ"
    if "T" in prob and kw.get("decay", True):
        assert g[-1] is not None and g[-1].abs().max() > 0  # the last target's gradient (the leaves end with T)


def _used_pairs(g, g_ref, dtype):
    """(kernel, reference) gradient pairs where both exist; where only one does, it must be zero."""
    pairs = []
    for a, b in zip(g, g_ref):
        if a is None or b is None:
            other = a if a is not None else b
            assert other is None or other.abs().max() == 0
            continue
        assert a.dtype == dtype
        pairs.append((a, b))
    return pairs


def in_float64(prob):
    """The same problem (the same, already rounded values) in float64."""
    return {k: [t.detach().double().requires_grad_() for t in v] if isinstance(v, list)
            else v.detach().double().requires_grad_() for k, v in prob.items()}


def assert_float32_match(prob, factor=KERNEL_FACTOR, gate_factor=GATE_GRADIENT_FACTOR, **kw):
    """The triton backend on a float32 ``prob``: values and gradients within ``factor`` (the gates' gradients:
    ``gate_factor``) times the float32 torch scan's own error, both measured against the torch scan on the same
    values in float64 (tests/numerics.py)."""
    assert prob["q"].dtype == torch.float32
    outs64, g64 = values_and_grads(in_float64(prob), "torch", **kw)
    outs32, g32 = values_and_grads(prob, "torch", **kw)
    outs, g = values_and_grads(prob, "triton", **kw)
    assert len(outs) == len(outs64) == len(outs32)
    for i, (a, e, r) in enumerate(zip(outs, outs64, outs32)):
        assert a.shape == e.shape and a.dtype == torch.float32
        assert_within_reference_error(a, e, r, factor=factor, what=f"value {i}")
    pairs = _used_pairs(g, g32, torch.float32)
    assert len(pairs) >= 5  # q, k, v, theta and the state at least
    for name, a, e, r in zip(leaf_names(prob), g, g64, g32):
        if a is not None and r is not None:
            gate = name.split("[")[0] in GATES
            assert_within_reference_error(a, e, r, factor=gate_factor if gate else factor, what=f"gradient {name}")


# ----------------------------------------------------------------------------------------------- float64
@pytest.mark.parametrize("momentum,decay,channelwise", [(True, True, False), (False, True, False),
                                                        (True, False, False), (False, False, False),
                                                        (True, True, True), (False, True, True)])
def test_linear_memory_float64(interp, momentum, decay, channelwise):
    prob = problem(depth=1, channelwise=channelwise)
    assert_match(prob, 1e-10, momentum=momentum, decay=decay)


def test_linear_memory_column_tiles_groups_commit(interp):
    """head_dim 32 in two column tiles, 5 chunks (the last partial) in groups of 2, the partial chunk committed."""
    prob = problem(N=1, T=72, d=32, depth=1, seed=3)
    assert_match(prob, 1e-10, group=2, commit=True)


@pytest.mark.parametrize("act", ["gelu", "silu"])
def test_deep_memory_float64(interp, act):
    assert_match(problem(depth=2, seed=1), 1e-10, act=act)


@pytest.mark.parametrize("momentum,decay", [(False, True), (True, False), (False, False)])
def test_deep_memory_without_momentum_or_decay(interp, momentum, decay):
    assert_match(problem(N=1, depth=2, seed=2), 1e-10, momentum=momentum, decay=decay)


@pytest.mark.parametrize("momentum", [True, False])
def test_deep_memory_channelwise_decay(interp, momentum):
    assert_match(problem(N=1, T=32, depth=2, channelwise=True, seed=4), 1e-10, momentum=momentum)


def test_deep_memory_groups_and_partial_chunk(interp):
    """5 chunks in groups of 2 (the backward recomputes each group's states), the partial last chunk committed."""
    assert_match(problem(N=1, T=72, depth=2, seed=5), 1e-10, group=2, commit=True)


@pytest.mark.slow
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_deep_memory_other_activations(interp, act):
    assert_match(problem(N=1, T=32, depth=2, seed=6), 1e-10, act=act)


@pytest.mark.slow
@pytest.mark.parametrize("depth,d", [(1, 64), (1, 128), (2, 32), (2, 64)])
def test_wider_heads(interp, monkeypatch, depth, d):
    """head_dim 64/128 (depth 1) and 32/64 (depth 2: hidden 128/256) with the default 64-wide tiles."""
    monkeypatch.setattr(op, "DEFAULT_TILE", 64)
    assert_match(problem(N=1, T=24, d=d, depth=depth, seed=7), 1e-10)


@pytest.mark.parametrize("depth,target", [(1, False), (2, False), (1, True), (2, True)])
def test_head_dim_not_a_power_of_two(interp, depth, target):
    """head_dim 24 (hidden 96) runs zero-padded to 32 (128), the LayerNorm over the true 24 channels: exact
    (the decay targets and r0 are padded with zeros too)."""
    assert_match(problem(N=1, T=40, d=24, depth=depth, seed=10, target=target), 1e-10)


# ----------------------------------------------------------------------------------------------- decay target
# M_t - T = (1 - alpha_t)(M_{t-1} - T) + S_t: r0 = (1 - A_0)(Q T_0) enters layer 0's read, (1 - A_1)(x_1 T_1)
# layer 1's, (1 - Ae) T every update. 40 tokens = 2.5 chunks: the last chunk is partial (not committed).
@pytest.mark.parametrize("momentum,channelwise", [(True, False), (False, False), (True, True), (False, True)])
def test_linear_memory_decay_target(interp, momentum, channelwise):
    """head_dim 32: two column tiles."""
    prob = problem(N=2, d=32, depth=1, channelwise=channelwise, seed=11, target=True)
    assert_match(prob, 1e-10, momentum=momentum)


def test_linear_memory_decay_target_groups_commit(interp):
    assert_match(problem(N=1, T=72, d=32, depth=1, seed=12, target=True), 1e-10, group=2, commit=True)


@pytest.mark.parametrize("momentum,channelwise,act", [(True, False, "gelu"), (False, False, "silu"),
                                                      (True, True, "gelu"), (False, True, "gelu")])
def test_deep_memory_decay_target(interp, momentum, channelwise, act):
    prob = problem(N=1, depth=2, channelwise=channelwise, seed=13, target=True)
    assert_match(prob, 1e-10, momentum=momentum, act=act)


def test_deep_memory_decay_target_groups_commit(interp):
    assert_match(problem(N=1, T=72, depth=2, seed=14, target=True), 1e-10, group=2, commit=True)


@pytest.mark.parametrize("depth", [1, 2])
def test_decay_target_without_decay_is_ignored(interp, depth):
    """memory_scan drops the target when the decay gate is off: the kernels run the old rule."""
    assert_match(problem(N=1, T=24, depth=depth, seed=15, target=True), 1e-10, decay=False)


@pytest.mark.parametrize("depth,channelwise", [(1, False), (2, False), (2, True)])
def test_decay_target_operator_gradients(interp, monkeypatch, depth, channelwise):
    """At the operator: every input's gradient, the targets' and r0's included, against MemoryScan's; head_dim 24
    (hidden 96), so the targets and r0 are zero-padded to 32 (128) and their gradients cut back."""
    meta, flat = _capture(monkeypatch, problem(N=2, T=40, d=24, depth=depth, channelwise=channelwise, seed=16,
                                               target=True))
    targets, r0 = flat[-1 - depth:-1], flat[-1]
    assert all(t is not None for t in targets) and r0 is not None and r0.shape[-1] == (24 if depth == 1 else 96)
    assert op.unsupported_reason(meta, flat) is None and op._padded(meta, flat) is not None
    o_k, g_k, x_k = _op_grads(lambda *xs: op.triton_memory_scan(meta, list(xs)), (), flat)
    o_r, g_r, _ = _op_grads(MemoryScan.apply, (meta,), flat)
    for a, b in zip(o_k, o_r):
        assert rel_err(a, b) <= 1e-10
    for a, b, x in zip(g_k, g_r, x_k):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == x.shape and rel_err(a, b) <= 1e-10
    present = [t for t in flat if t is not None]
    for x in (*targets, r0):  # the targets' and r0's gradients are among those compared, and not zero
        i = next(i for i, y in enumerate(present) if y is x)
        assert g_k[i] is not None and g_k[i].abs().max() > 0


# ----------------------------------------------------------------------------------------------- float32 / bf16
@pytest.mark.parametrize("depth,target", [(1, False), (2, False), (1, True), (2, True)])
def test_float32(interp, depth, target, tol_seed):
    """Within KERNEL_FACTOR of the float32 torch scan's own error against the float64 answer, both rules."""
    assert_float32_match(problem(N=2, T=40, depth=depth, dtype=torch.float32, seed=8 + tol_seed, target=target))


def _capture(monkeypatch, prob, **kw):
    """(meta, flat) of the operator call that memory_scan makes."""
    seen = {}

    def grab(backend, meta, flat):
        seen["meta"], seen["flat"] = meta, [None if t is None else t.detach() for t in flat]
        return MemoryScan.apply(meta, *flat)

    with monkeypatch.context() as m:
        m.setattr(dispatch, "apply_scan", grab)
        run(prob, "auto", **kw)
    return seen["meta"], seen["flat"]


def _op_grads(fn, meta_args, flat):
    xs = [None if t is None else t.clone().requires_grad_() for t in flat]
    outs = fn(*meta_args, *xs)
    g = torch.Generator().manual_seed(2)
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
    used = [x for x in xs if x is not None]
    return outs, torch.autograd.grad(loss, used, allow_unused=True), used


@pytest.mark.parametrize("depth", [1, 2])
def test_bf16_inputs_float32_state(interp, monkeypatch, depth, tol_seed):
    """kq, qb, v, off in bf16 (the state and the coefficients float32): the kernels upcast on load. Against the
    float64 scan on the same rounded values, within KERNEL_FACTOR of the float32 torch scan's error there; against
    the float64 scan on the values before rounding, within 8x the error that rounding the inputs gives the torch
    scan; the gradients of the bf16 inputs, returned in bf16, within 2x the bf16 rounding of the torch scan's."""
    meta, flat = _capture(monkeypatch, problem(N=2, T=40, depth=depth, dtype=torch.float32, seed=9 + tol_seed))
    inputs = range(depth, depth + 4)  # kq, qb, v, off
    low = [t.bfloat16() if (i in inputs and t is not None) else t for i, t in enumerate(flat)]
    rounded = [t.float() if (i in inputs and t is not None) else t for i, t in enumerate(low)]
    o_k, g_k, x_k = _op_grads(lambda *xs: op.triton_memory_scan(meta, list(xs)), (), low)
    o_r, g_r, _ = _op_grads(MemoryScan.apply, (meta,), rounded)
    o_r64, g_r64, _ = _op_grads(MemoryScan.apply, (meta,), [None if t is None else t.double() for t in rounded])
    o_f64, _, _ = _op_grads(MemoryScan.apply, (meta,), [None if t is None else t.double() for t in flat])
    for i, (a, r, e, e_f) in enumerate(zip(o_k, o_r, o_r64, o_f64)):
        assert a.dtype == torch.float32
        assert_within_reference_error(a, e, r, factor=KERNEL_FACTOR, what=f"value {i}, the same rounded inputs")
        assert_within_reference_error(a, e_f, r, what=f"value {i}, the inputs before rounding")
    checked = 0
    for i, (a, r, e, x) in enumerate(zip(g_k, g_r, g_r64, x_k)):
        if a is None or r is None:
            continue
        checked += 1
        assert a.dtype == x.dtype
        if x.dtype == torch.bfloat16:
            # one rounding of a float32 result: within 2x the same rounding of the torch scan's, or 2 bf16 eps
            assert_within_reference_error(a, e, r.bfloat16(), factor=2, ulps=1, what=f"bf16 gradient {i}")
        else:
            assert_within_reference_error(a, e, r, factor=KERNEL_FACTOR, what=f"gradient {i}")
    assert checked >= 6


# ----------------------------------------------------------------------------------------------- the layer
@pytest.mark.usefixtures("float64_default")
@pytest.mark.parametrize("kw", [{}, dict(depth=1, momentum=False), dict(channelwise_alpha=True),
                                dict(activation="silu", per_layer_gates=False), dict(decay_target="zero"),
                                dict(depth=1, decay_target="zero")])
def test_layer_triton_equals_scan(interp, kw):
    """NeuralMemory with impl='triton' and impl='scan': same outputs and parameter gradients (head_dim 16, a
    partial last chunk). The default decay_target="init" runs the kernels too (no fallback warning)."""
    assert MemoryConfig(**kw).decay_target == kw.get("decay_target", "init")
    x = torch.randn(1, 21, 32)
    results = []
    for impl in ("scan", "triton"):
        torch.manual_seed(0)
        mem = NeuralMemory(32, MemoryConfig(num_heads=2, chunk_size=16, impl=impl, **kw))
        with torch.no_grad():
            mem.gates.proj.weight.normal_(std=0.3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y, state = mem(x)
            y2, state = mem(x[:, :13], state)  # continue from a buffered partial chunk
            (y.pow(2).sum() + y2.pow(2).sum() + state.weights[-1].sum()).backward()
        results.append((torch.cat([y, y2], 1).detach(), {n: p.grad.clone() for n, p in mem.named_parameters()}))
    (y0, g0), (y1, g1) = results
    assert torch.allclose(y0, y1, atol=1e-11)
    assert set(g0) == set(g1)
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-9, rtol=1e-9), name


# ----------------------------------------------------------------------------------------------- dispatch
def _scan_node_class(y):
    node, seen = y.grad_fn, set()
    stack = [node]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        cls = getattr(node, "_forward_cls", None)
        if cls in (MemoryScan, op.TritonMemoryScan):
            return cls
        stack.extend(n for n, _ in node.next_functions)
    return None


def test_auto_backend_keeps_the_torch_scan_on_cpu(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # even with the interpreter on, "auto" only picks Triton on CUDA
    y, _, _ = run(problem(N=1, T=16, depth=1), "auto")
    assert _scan_node_class(y) is MemoryScan


def test_explicit_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match=r"impl='triton' needs CUDA tensors .* or TRITON_INTERPRET=1") as err:
        run(problem(N=1, T=16, depth=1), "triton")
    assert "\n" not in str(err.value)
    mem = NeuralMemory(32, MemoryConfig(num_heads=2, chunk_size=16, impl="triton"))
    with pytest.raises(RuntimeError, match="impl='scan' on this device"):
        mem(torch.randn(1, 16, 32))


def test_explicit_triton_falls_back_for_uncovered_configs(interp):
    """chunk 8 and depth 3 are not covered: the torch scan runs them, with a warning naming the reason."""
    dispatch._WARNED.clear()
    for kw, why in ((dict(chunk=8), "chunk_size 8"), (dict(), "depth 3")):
        prob = problem(N=1, T=16, depth=1)
        if why.startswith("depth"):
            prob["W0"], prob["S0"] = prob["W0"] * 3, prob["S0"] * 3
            prob["theta"], prob["eta"], prob["alpha"] = (prob[k] * 3 for k in ("theta", "eta", "alpha"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y, _, _ = run(prob, "triton", **kw)
        assert any(why in str(w.message) for w in caught), [str(w.message) for w in caught]
        assert _scan_node_class(y) is MemoryScan


def test_triton_kernels_run_under_the_interpreter(interp):
    y, _, _ = run(problem(N=1, T=16, depth=1), "triton")
    assert _scan_node_class(y) is op.TritonMemoryScan


def test_impl_triton_is_a_config_value():
    assert MemoryConfig(impl="triton").impl == "triton"
    assert MemoryConfig(impl="triton", compile=True).compile
    with pytest.raises(ValueError, match="impl must be one of"):
        MemoryConfig(impl="cuda")


def test_compiled_kernel_module_loads_without_a_gpu(monkeypatch):
    """The GPU copy of the kernels is decorated for the compiler even when the interpreter is on."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    import triton

    assert isinstance(op._load_kernels(False).deep_bwd_kernel, triton.runtime.jit.JITFunction)
    assert not isinstance(op._load_kernels(True).deep_bwd_kernel, triton.runtime.jit.JITFunction)


# ----------------------------------------------------------------------------------------------- on a GPU
@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("depth,kw", [(1, {}), (2, {}), (2, dict(channelwise=True, act="silu")),
                                     (1, dict(target=True)), (2, dict(target=True))])
def test_gpu_compiled_kernels_equal_the_torch_scan(monkeypatch, depth, kw):
    """Compiled kernels on CUDA, head_dim 64, 17 chunks (the last partial), float32: within KERNEL_FACTOR of the
    float32 torch scan's own error against the float64 scan (all on the GPU; TF32 off for the torch side); with
    and without a decay target."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    kw = dict(kw)
    channelwise, target = kw.pop("channelwise", False), kw.pop("target", False)
    prob = problem(N=4, T=264, d=64, depth=depth, channelwise=channelwise, dtype=torch.float32, device="cuda",
                   target=target)
    assert_float32_match(prob, group=3, **kw)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gpu_auto_dispatch_selects_triton(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("TITANS_TRITON", raising=False)
    y, _, _ = run(problem(N=2, T=64, d=64, depth=2, dtype=torch.float32, device="cuda"), "auto")
    assert _scan_node_class(y) is op.TritonMemoryScan
    assert not dispatch._AUTO_FAILED, dispatch._AUTO_FAILED
