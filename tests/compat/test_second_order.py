"""Second derivatives: equal to torch.nn's on every back end, or a clear error; never a silent wrong value."""

from __future__ import annotations

import pytest
import torch

from rnnkit.engine.fused.extras import SECOND_ORDER_ERROR, SecondOrderError

from .conftest import BACKENDS, LAYERS, B, D, T, make


def _penalty(module, x: torch.Tensor, lengths=None):
    """A gradient penalty (WGAN-GP style) plus an ordinary term; returns the weights' gradients."""
    x = x.clone().requires_grad_(True)
    out, _ = module(x) if lengths is None else module(x, lengths=lengths)
    (g,) = torch.autograd.grad((out * out.detach().sin()).sum(), x, create_graph=True)
    loss = ((g.norm(dim=-1) - 1) ** 2).mean() + out.pow(2).mean()
    return torch.autograd.grad(loss, list(module.parameters()))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(LAYERS))
def test_gradient_penalty_matches_torch_nn(kind, backend):
    ours, theirs = make(kind, backend, torch.float64, num_layers=2)
    x = torch.randn(T, B, D, dtype=torch.float64)
    for mine, ref, name in zip(_penalty(ours, x), _penalty(theirs, x), dict(theirs.named_parameters()), strict=True):
        torch.testing.assert_close(mine, ref, atol=1e-10, rtol=1e-8, msg=lambda m, n=name: f"{n}: {m}")


def test_gradient_penalty_with_lengths_on_fused():
    ours, ref = make("gru", "fused", torch.float64, bidirectional=True)
    same, _ = make("gru", "reference", torch.float64, bidirectional=True)
    x, lengths = torch.randn(4, 3, D, dtype=torch.float64), torch.tensor([4, 2, 3])
    for mine, theirs in zip(_penalty(ours, x, lengths), _penalty(same, x, lengths), strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("backend", ["reference", "native", "fused"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_gradgradcheck(kind, backend):
    ours, _ = make(kind, backend, torch.float64)
    x = torch.randn(2, 2, D, dtype=torch.float64, requires_grad=True)
    params = list(ours.parameters())

    def f(x, w_hh, w_ih):
        return torch.func.functional_call(ours, {"weight_hh_l0": w_hh, "weight_ih_l0": w_ih}, (x,))[0]

    assert torch.autograd.gradgradcheck(f, (x, params[1].detach().requires_grad_(),
                                            params[0].detach().requires_grad_()))


@pytest.mark.parametrize("option", [{"layer_norm": True}, {"zoneout": 0.2}])
def test_fused_extras_raise_on_second_order(option):
    layer = LAYERS["lstm"][0](D, 4, backend="fused", **option).double()
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    out, _ = layer(x)
    with pytest.raises(SecondOrderError, match="no second derivative"):
        torch.autograd.grad(out.sum(), x, create_graph=True)
    assert "backend='native'" in SECOND_ORDER_ERROR
    # First order still works, without a graph asked.
    (g,) = torch.autograd.grad(layer(x)[0].sum(), x)
    assert g.shape == x.shape
