"""Zero-size inputs as torch.nn handles them: a batch of zero sequences gives empty outputs and states and
zero (not missing) gradients on every back end; a sequence of zero steps raises RuntimeError, as torch.nn does.
The expectations come from torch.nn itself, run side by side on the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.engine import autotune

PAIRS = {"rnn": (nn.RNN, rnnkit.RNN), "lstm": (nn.LSTM, rnnkit.LSTM), "gru": (nn.GRU, rnnkit.GRU)}
BACKENDS = ["reference", "native", "fused", "auto", "auto-tuned"]


@pytest.fixture
def backend(request, tmp_path, monkeypatch):
    """A back end name; ``auto-tuned`` is ``auto`` with the tuner on and an empty private cache."""
    name = request.param
    if name == "auto-tuned":
        monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("RNNKIT_AUTOTUNE", "1")
        autotune.forget()
        yield "auto"
        autotune.forget()
        return
    yield name


def _pair(kind: str, layers: int, bidirectional: bool, batch_first: bool, backend: str):
    torch_cls, kit_cls = PAIRS[kind]
    ref = torch_cls(3, 5, layers, bidirectional=bidirectional, batch_first=batch_first).double()
    kit = kit_cls(3, 5, layers, bidirectional=bidirectional, batch_first=batch_first, backend=backend).double()
    kit.load_state_dict(ref.state_dict())
    return ref, kit


def _run(module, x, hx, **kw):
    x = x.clone().requires_grad_(True)
    hx = None if hx is None else tuple(h.clone().requires_grad_(True) for h in hx)
    out, states = module(x, None if hx is None else (hx if len(hx) > 1 else hx[0]), **kw)
    states = states if isinstance(states, tuple) else (states,)
    (out.sum() + sum(s.sum() for s in states)).backward()
    grads = {n: p.grad for n, p in module.named_parameters()}
    return out, states, x.grad, None if hx is None else [h.grad for h in hx], grads


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_hx", [False, True])
def test_empty_batch_matches_torch(backend, kind, batch_first, layers, bidirectional, with_hx):
    ref, kit = _pair(kind, layers, bidirectional, batch_first, backend)
    x = torch.randn(0, 4, 3, dtype=torch.float64) if batch_first else torch.randn(4, 0, 3, dtype=torch.float64)
    count = 2 if kind == "lstm" else 1
    hx = tuple(torch.randn(layers * (2 if bidirectional else 1), 0, 5, dtype=torch.float64)
               for _ in range(count)) if with_hx else None
    expect, got = _run(ref, x, hx), _run(kit, x, hx)
    assert got[0].shape == expect[0].shape and got[0].requires_grad
    assert [s.shape for s in got[1]] == [s.shape for s in expect[1]]
    assert got[2].shape == expect[2].shape
    if with_hx:
        assert [g.shape for g in got[3]] == [g.shape for g in expect[3]]
    assert expect[4].keys() == got[4].keys()
    for name, grad in expect[4].items():
        assert got[4][name] is not None, name  # zero, as torch.nn's, not missing
        torch.testing.assert_close(got[4][name], grad)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("batch_first", [False, True])
def test_empty_batch_with_empty_lengths(backend, kind, batch_first):
    """``lengths`` (rnnkit's; torch.nn has none) of a batch of zero sequences is empty: the same empty result."""
    ref, kit = _pair(kind, 2, True, batch_first, backend)
    x = torch.randn(0, 4, 3, dtype=torch.float64) if batch_first else torch.randn(4, 0, 3, dtype=torch.float64)
    expect = _run(ref, x, None)
    got = _run(kit, x, None, lengths=torch.zeros(0, dtype=torch.int64))
    assert got[0].shape == expect[0].shape and [s.shape for s in got[1]] == [s.shape for s in expect[1]]
    for name, grad in expect[4].items():
        torch.testing.assert_close(got[4][name], grad)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("shape", [(0, 2, 3), (0, 0, 3), (0, 3)])
def test_zero_steps_raise_runtime_error_like_torch(backend, kind, shape):
    ref, kit = _pair(kind, 1, False, False, backend)
    x = torch.randn(*shape, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        ref(x)
    with pytest.raises(RuntimeError, match="zero time steps"):
        kit(x)
