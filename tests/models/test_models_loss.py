"""The fused LM-head cross-entropy equals F.cross_entropy on the logits, values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from titans.models import build_causal_lm
from titans.models.loss import linear_cross_entropy
from numerics import assert_within_reference_error, float64_copy


def _reference(hidden, weight, labels):
    return F.cross_entropy(hidden @ weight.t(), labels, ignore_index=-100)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_matches_cross_entropy_float64(chunk):
    torch.manual_seed(0)
    T, d, V = 37, 8, 50
    hidden = torch.randn(T, d, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(V, d, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, V, (T,))
    labels[[3, 10, 11]] = -100
    ref = _reference(hidden, weight, labels)
    g_ref = torch.autograd.grad(2.5 * ref, (hidden, weight))
    out = linear_cross_entropy(hidden, weight, labels, chunk_size=chunk)
    g_out = torch.autograd.grad(2.5 * out, (hidden, weight))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_gradcheck():
    torch.manual_seed(1)
    hidden = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 4, -100, 2, 2, 1])
    assert torch.autograd.gradcheck(lambda h, w: linear_cross_entropy(h, w, labels, chunk_size=4), (hidden, weight))


def test_only_hidden_needs_grad_and_batched_shape(tol_seed):
    """float32: the gradient within 8x the float32 F.cross_entropy's own error (tests/numerics.py)."""
    torch.manual_seed(2 + tol_seed)
    hidden = torch.randn(2, 9, 4, requires_grad=True)
    weight = torch.randn(11, 4)
    labels = torch.randint(0, 11, (2, 9))
    out = linear_cross_entropy(hidden, weight, labels, chunk_size=5)
    out.backward()
    grads = []
    for dtype in (torch.float32, torch.float64):
        ref_h = hidden.detach().to(dtype).requires_grad_()
        F.cross_entropy((ref_h @ weight.to(dtype).t()).view(-1, 11), labels.view(-1)).backward()
        grads.append(ref_h.grad)
    assert_within_reference_error(hidden.grad, grads[1], grads[0])


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="must agree"):
        linear_cross_entropy(torch.randn(4, 3), torch.randn(5, 3), torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("variant", ["transformer", "mac"])
def test_model_loss_without_logits_matches_with_logits(variant):
    torch.manual_seed(0)
    model = build_causal_lm(variant, "tiny", vocab_size=97, loss_chunk_size=16, n_persistent=4, segment_len=16,
                            window=16, memory=dict(chunk_size=4)).double()
    x = torch.randint(0, 97, (2, 40))
    labels = x.clone()
    labels[0, :7] = -100
    full = model(x, labels=labels)
    grads_full = torch.autograd.grad(full.loss, list(model.parameters()), allow_unused=True)
    fused = model(x, labels=labels, return_logits=False)
    assert fused.logits is None
    grads_fused = torch.autograd.grad(fused.loss, list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(fused.loss, full.loss, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_fused, grads_full):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_lightning_module_trains_through_the_fused_loss(monkeypatch, tol_seed):
    """LitCausalLM's training loss goes through linear_cross_entropy (no [B, T, V] logits) and is the plain loss."""
    import titans.models.modeling as modeling
    from titans.models import build_causal_lm
    from titans.training import LitCausalLM

    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return linear_cross_entropy(*args, **kwargs)

    monkeypatch.setattr(modeling, "linear_cross_entropy", counting)
    torch.manual_seed(tol_seed)
    lit = LitCausalLM(net=build_causal_lm("transformer", "tiny", vocab_size=64), optimizer={"lr": 1e-3},
                      scheduler={"warmup_steps": 0})
    x = torch.randint(0, 64, (2, 24))
    loss = lit._loss({"input_ids": x})
    assert calls == [torch.Size([2, 23, lit.net.config.d_model])]
    with torch.no_grad():
        plain = F.cross_entropy(lit(x)[:, :-1].reshape(-1, 64), x[:, 1:].reshape(-1))
        logits64 = float64_copy(lit.net)(input_ids=x).logits
        plain64 = F.cross_entropy(logits64[:, :-1].reshape(-1, 64), x[:, 1:].reshape(-1))
    assert_within_reference_error(loss.detach(), plain64, plain)  # the float32 plain loss's error, 8x
