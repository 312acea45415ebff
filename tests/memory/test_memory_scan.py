"""The memory scan operator (titans.memory.scan) against the autograd reference (titans.memory.chunked).

float64 throughout: outputs, final state and the gradients of every input equal the reference's; gradcheck
checks the hand-written backward against finite differences; the layer and whole models give the same values
and parameter gradients with impl="scan" and impl="autograd"; the op count stays under a stated ceiling.
"""

import dataclasses

import pytest
import torch

from titans.memory import MemoryConfig, NeuralMemory, chunked_memory, memory_scan
from titans.memory.scan import MemoryScan, scan_inputs
from titans.memory.scan_spec import ScanInputs, ScanSpec

from memory_oracle import make_problem, make_target, run_oracle
from scan_problems import decay_target_gradcheck_problem, leaves, outputs_and_grads, run_scan

# every tensor of these tests is float64 (the default dtype is restored afterwards)
pytestmark = pytest.mark.usefixtures("single_thread", "float64_default")


def compare(depth=2, chunk=4, T=13, momentum=True, decay=True, act="gelu", commit=False, channelwise=False,
            group=0, shared=False, N=3, tol=1e-10, target=False):
    """Values and gradients (of a random linear function of y and the final state) of scan vs reference;
    ``target``: forgetting decays toward a decay target (whose gradient is compared too)."""
    prob = list(make_problem(N=N, T=T, depth=depth, channelwise=channelwise, seed=depth * 7 + chunk + T))
    if target:
        prob.append(make_target(prob))
    prob = [[t.clone().requires_grad_() for t in x] if isinstance(x, list) else x.clone().requires_grad_()
            for x in prob]
    extra = dict(decay_target=prob.pop()) if target else {}
    if shared:  # layers that share one gate tensor (per_layer_gates=False)
        for i in (3, 4, 5):
            prob[i] = [prob[i][0]] * depth
    results = []
    wrt = leaves(prob) + list(extra.get("decay_target", []))
    for op, kw in ((chunked_memory, {}), (memory_scan, dict(checkpoint_group=group))):
        results.append(outputs_and_grads(op, prob, wrt, chunk, momentum, decay, act, commit, **kw, **extra))
    (outs_ref, g_ref), (outs, g_scan) = results
    assert len(outs) == len(outs_ref)
    for a, b in zip(outs, outs_ref):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= tol * (1 + b.abs().max()), "values differ"
    used = 0
    for a, b in zip(g_scan, g_ref):
        if a is None or b is None:
            z = a if a is not None else b
            assert z is None or z.abs().max() == 0
            continue
        used += 1
        assert (a - b).abs().max() <= tol * (1 + b.abs().max()), "gradients differ"
    assert used >= 5  # q, k, v, the learning rate and the state at least
    if target and decay:  # the target's gradient is compared above and is not identically zero
        assert all(g is not None and g.abs().max() > 0 for g in g_scan[-depth:])


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("chunk", [1, 4, 5])
def test_scan_equals_reference_with_decay_target(depth, chunk):
    compare(depth=depth, chunk=chunk, target=True)


@pytest.mark.parametrize("kw", [dict(momentum=False), dict(channelwise=True, T=12),
                                dict(channelwise=True, T=12, depth=1, momentum=False), dict(T=13, commit=True),
                                dict(T=23, group=3), dict(shared=True), dict(decay=False)])
def test_scan_decay_target_variants(kw):
    compare(target=True, **kw)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("chunk", [1, 4, 5])
def test_scan_equals_reference(depth, chunk):
    compare(depth=depth, chunk=chunk)


@pytest.mark.parametrize("momentum,decay", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("depth", [1, 2])
def test_scan_without_momentum_or_decay(depth, momentum, decay):
    compare(depth=depth, momentum=momentum, decay=decay)


@pytest.mark.parametrize("depth,momentum", [(1, True), (2, True), (2, False)])
def test_scan_channelwise_decay(depth, momentum):
    compare(depth=depth, T=12, channelwise=True, momentum=momentum)


@pytest.mark.parametrize("act", ["silu", "relu", "tanh"])
def test_scan_other_activations(act):
    compare(chunk=3, act=act)


@pytest.mark.parametrize("T,commit", [(13, True), (16, True), (16, False), (3, False), (3, True)])
def test_scan_partial_last_chunk(T, commit):
    compare(T=T, commit=commit)


@pytest.mark.parametrize("group", [1, 3, 100])
def test_scan_group_sizes(group):
    compare(T=23, group=group)


def test_scan_shared_gates():
    compare(shared=True)
    compare(depth=3, shared=True, momentum=False)


def test_scan_matches_oracle():
    prob = make_problem(depth=2, T=13, seed=4)
    y, W, S = run_scan(memory_scan, prob, 4, True, True, "gelu", False)
    y_ref, W_ref, S_ref = run_oracle(prob, 4)
    for a, b in zip([y, *W, *S], [y_ref, *W_ref, *S_ref]):
        assert (a - b).abs().max() < 1e-10


def test_gradcheck_scan():
    """The hand-written backward against finite differences (both memory layers, momentum, decay)."""
    torch.manual_seed(1)
    N, T, d = 2, 7, 3
    nrm = torch.nn.functional.normalize
    q = nrm(torch.randn(N, T, d), dim=-1).requires_grad_()
    k = nrm(torch.randn(N, T, d), dim=-1).requires_grad_()
    v = torch.randn(N, T, d, requires_grad=True)
    lr = (0.2 * torch.rand(N, T, 2)).requires_grad_()
    log_eta = torch.rand(N, T, 2).log().requires_grad_()
    log_decay = torch.log1p(-0.3 * torch.rand(N, T, 2)).requires_grad_()
    W1 = torch.randn(N, d, 2 * d, requires_grad=True)
    W2 = (torch.randn(N, 2 * d, d) / 2).requires_grad_()
    S1 = (0.1 * torch.randn(N, d, 2 * d)).requires_grad_()
    S2 = (0.1 * torch.randn(N, 2 * d, d)).requires_grad_()
    lw = (1 + 0.1 * torch.randn(N, 1, d)).requires_grad_()
    lb = (0.1 * torch.randn(N, 1, d)).requires_grad_()

    def f(q, k, v, lr, log_eta, log_decay, W1, W2, S1, S2, lw, lb):
        y, W, S = memory_scan(q, k, v, [lr[..., :1], lr[..., 1:]], [log_eta[..., :1], log_eta[..., 1:]],
                              [log_decay[..., :1], log_decay[..., 1:]], [W1, W2], [S1, S2], chunk_size=3,
                              activation="gelu", ln_weight=lw, ln_bias=lb, commit_partial=True, checkpoint_group=2)
        return y, W[0], W[1], S[0], S[1]

    assert torch.autograd.gradcheck(f, (q, k, v, lr, log_eta, log_decay, W1, W2, S1, S2, lw, lb), atol=1e-6)


@pytest.mark.parametrize("depth", [1, 2])
def test_gradcheck_scan_decay_target(depth):
    """The decay-target terms of the hand-written backward against finite differences (every input, the target
    included)."""
    f, inputs = decay_target_gradcheck_problem(depth)
    assert torch.autograd.gradcheck(f, inputs, atol=1e-6)


def test_gradcheck_scan_linear_channelwise():
    torch.manual_seed(2)
    N, T, d = 2, 6, 3
    q, k, v = (torch.randn(N, T, d, requires_grad=True) for _ in range(3))
    lr = (0.3 * torch.rand(N, T, 1)).requires_grad_()
    log_eta = torch.rand(N, T, 1).log().requires_grad_()
    log_decay = torch.log1p(-0.3 * torch.rand(N, T, d)).requires_grad_()
    W = torch.randn(N, d, d, requires_grad=True)
    S = (0.1 * torch.randn(N, d, d)).requires_grad_()

    def f(q, k, v, lr, log_eta, log_decay, W, S):
        y, Wn, Sn = memory_scan(q, k, v, [lr], [log_eta], [log_decay], [W], [S], chunk_size=4, activation="gelu")
        return y, Wn[0], Sn[0]

    assert torch.autograd.gradcheck(f, (q, k, v, lr, log_eta, log_decay, W, S), atol=1e-6)


def test_scan_forward_keeps_no_graph_and_saves_group_states():
    """The forward runs the loop without autograd and saves the state only at group starts."""
    prob = make_problem(depth=2, T=40, seed=3)
    prob = [[t.clone().requires_grad_() for t in x] if isinstance(x, list) else x.clone().requires_grad_()
            for x in prob]
    y, W, S = run_scan(memory_scan, prob, 4, True, True, "gelu", False, checkpoint_group=3)
    node = y.grad_fn
    while node is not None and not isinstance(getattr(node, "_forward_cls", None), type(MemoryScan)):
        node = node.next_functions[0][0]
    assert node is not None and node._forward_cls is MemoryScan
    assert node.n_saved == 4  # 10 chunks, groups of 3: states at chunks 0, 3, 6, 9
    # the final weights are W's half of the op's [W | S] output: one slice away from the scan node
    assert W[0].grad_fn.next_functions[0][0].name().startswith("MemoryScan")


def test_the_operator_takes_a_typed_spec_and_named_inputs():
    """The operator's interface (titans.memory.scan_spec): a frozen, hashable ScanSpec (a non-tensor autograd
    argument, compared by value) and the flat tensor list that ScanInputs reads back by name."""
    prob = list(make_problem(depth=2, T=10, seed=4))
    target = make_target(prob)
    q, k, v, theta, eta, alpha, W0, S0, ln_w, ln_b = prob
    spec, flat = scan_inputs(q, k, v, theta, [e.log() for e in eta], [torch.log1p(-a) for a in alpha], W0, S0,
                             chunk_size=4, activation="gelu", ln_weight=ln_w, ln_bias=ln_b, decay_target=target)
    assert spec == ScanSpec(depth=2, momentum=True, activation="gelu", ln_eps=1e-5, chunk_size=4, update_last=False,
                            group=1, compile=False, douts=(W0[0].shape[-1], W0[1].shape[-1]))
    assert hash(spec) == hash(dataclasses.replace(spec)) and {spec: 1}[dataclasses.replace(spec)] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.group = 2
    x = ScanInputs.unflatten(flat, spec.depth)
    assert all(a is b for a, b in zip(x.flat(), flat)) and len(flat) == ScanInputs.size(2)
    assert x.kq.shape == (3, q.shape[0], 8, q.shape[-1]) and x.v is None and x.lnw is ln_w  # 3 chunks of 4
    assert [w.shape[-1] for w in x.WS] == [2 * dout for dout in spec.douts]  # [W | S]
    assert len(x.coefs) == 2 and all(len(layer) == 7 for layer in x.coefs)
    assert all(a is b for a, b in zip(x.targets, target)) and x.r0 is not None
    with pytest.raises(ValueError, match="takes 24 inputs, got 23"):
        ScanInputs.unflatten(flat[:-1], spec.depth)


def _mem_pair(**kw):
    mems = []
    for impl in ("autograd", "scan"):
        torch.manual_seed(0)
        cfg = dict(num_heads=2, depth=2, expansion=2, chunk_size=4, impl=impl)
        cfg.update(kw)
        mem = NeuralMemory(8, MemoryConfig(**cfg))
        with torch.no_grad():
            mem.gates.proj.weight.normal_(std=0.3)
        mems.append(mem)
    return mems


@pytest.mark.parametrize("kw", [{}, dict(depth=1, momentum=False), dict(channelwise_alpha=True),
                                dict(per_layer_gates=False, depth=3), dict(checkpoint_group=2),
                                dict(decay_target="zero"), dict(decay_target="zero", depth=1)])
def test_layer_scan_equals_autograd(kw):
    x = torch.randn(2, 19, 8)
    grads = []
    for mem in _mem_pair(**kw):
        y, state = mem(x)
        (y.pow(2).sum() + state.weights[-1].sum()).backward()
        grads.append((y.detach(), {n: p.grad.clone() for n, p in mem.named_parameters()}))
    (y0, g0), (y1, g1) = grads
    assert torch.allclose(y0, y1, atol=1e-11)
    assert set(g0) == set(g1)
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-9, rtol=1e-9), name


@pytest.mark.parametrize("variant", ["mac", "mag", "mal", "lmm", "gated_deltanet"])
def test_models_scan_equal_autograd(variant):
    from titans.models.sizes import build_causal_lm

    x = torch.randint(0, 64, (2, 40))
    out = []
    for impl in ("autograd", "scan"):
        torch.manual_seed(0)
        model = build_causal_lm(variant, "tiny", vocab_size=64, n_layers=2, d_model=32, n_heads=2,
                                segment_len=16, window=16, n_persistent=4,
                                memory=dict(impl=impl, chunk_size=4)).double()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        out.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (l0, g0), (l1, g1) = out
    assert torch.allclose(l0, l1, atol=1e-12)
    assert set(g0) == set(g1) and len(g0) > 10
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-9, rtol=1e-8), name


def test_impl_config_is_checked():
    with pytest.raises(ValueError, match="impl must be one of"):
        MemoryConfig(impl="fast")
    with pytest.raises(ValueError, match="compile=True needs impl='scan'"):
        MemoryConfig(impl="autograd", compile=True)


def _can_compile() -> bool:
    import shutil

    return shutil.which("g++") is not None or shutil.which("clang++") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _can_compile(), reason="torch.compile needs a C++ compiler on CPU")
def test_compiled_scan_equals_eager():
    """compile=True runs the same chunk step through torch.compile: same values and gradients (float64)."""
    from titans.memory import scan

    for depth, momentum in ((2, True), (1, False)):
        prob = make_problem(N=2, T=11, depth=depth, seed=9)
        prob = [[t.clone().requires_grad_() for t in x] if isinstance(x, list) else x.clone().requires_grad_()
                for x in prob]
        results = []
        for compile in (False, True):
            y, W, S = run_scan(memory_scan, prob, 4, momentum, True, "gelu", False, compile=compile)
            outs = [y] + W + (S or [])
            loss = sum((o * (i + 1)).sum() for i, o in enumerate(outs))
            grads = torch.autograd.grad(loss, leaves(prob), allow_unused=True)
            results.append((outs, grads))
        assert not scan._COMPILE_FAILED, scan._COMPILE_FAILED
        for a, b in zip(results[0][0], results[1][0]):
            assert torch.allclose(a, b, atol=1e-12)
        for a, b in zip(results[0][1], results[1][1]):
            assert (a is None) == (b is None)
            if a is not None:
                assert torch.allclose(a, b, atol=1e-10)
