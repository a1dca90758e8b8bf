"""The auto-tuner has no side effects: with the tuner on and an empty private cache (so the first call of a
kind is timed), whatever PyTorch code does around a layer works as with the tuner off.

* Under tracing, compile, export, ``torch.func`` transforms, dispatch modes and autocast nothing is timed
  (``measure`` is spied on) and the static rule decides. Here the static rule is made to pick the native back
  end (torch's own kernels, which these tools understand), so a failure can only be the tuner's.
* Where timing does run (plain eager calls), it runs on detached stand-ins: parametrized and hook-made
  weights, tensor and module hooks, the random state and autocast state are as they were, and results equal
  those of a run with the tuner off on the back end the tuner chose.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn.utils import parametrize

import rnnkit
from rnnkit.engine import autotune, registry
from rnnkit.engine.fused.backend import FusedBackend


@pytest.fixture(autouse=True)
def tuner(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RNNKIT_AUTOTUNE", "1")
    autotune.forget()
    yield
    autotune.forget()


@pytest.fixture
def timings(monkeypatch):
    """Every race the tuner runs, recorded (the real ``measure`` still runs)."""
    calls = []
    real = autotune.measure

    def spy(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(autotune, "measure", spy)
    return calls


@pytest.fixture
def native_static(monkeypatch):
    """The static rule picks native (fused steps aside): the tools below understand torch's kernels."""
    monkeypatch.setattr(FusedBackend, "preference", lambda self, layer, x, lengths, training: 0.0)


def _gru():
    torch.manual_seed(0)
    return rnnkit.GRU(4, 8).double(), torch.randn(12, 3, 4, dtype=torch.float64)


# -- nothing is timed where PyTorch traces or transforms the call ------------------------------------------------


def test_jit_trace(timings, native_static):
    layer, x = _gru()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(layer, (x,), check_trace=False)
    assert timings == []
    torch.testing.assert_close(traced(x)[0], layer(x)[0])


def test_torch_func_grad(timings, native_static):
    layer, x = _gru()
    got = torch.func.grad(lambda x: layer(x)[0].square().sum())(x)
    params = dict(layer.named_parameters())
    got_params = torch.func.grad(lambda p: torch.func.functional_call(layer, p, (x,))[0].square().sum())(params)
    assert timings == []
    x_ = x.clone().requires_grad_(True)
    expect = torch.autograd.grad(layer(x_)[0].square().sum(), [x_, *params.values()])
    torch.testing.assert_close(got, expect[0])
    for g, e in zip(got_params.values(), expect[1:], strict=True):
        torch.testing.assert_close(g, e)


def test_torch_export(timings, native_static):
    layer, x = _gru()
    program = torch.export.export(layer, (x,))
    assert timings == []
    torch.testing.assert_close(program.module()(x)[0], layer(x)[0])


def test_torch_compile(timings, native_static):
    layer, x = _gru()
    out = torch.compile(layer, backend="eager")(x)[0]
    assert timings == []
    torch.testing.assert_close(out, layer(x)[0])


def test_dispatch_mode_counts_only_the_call(timings, native_static):
    """A FLOP counter (a TorchDispatchMode) sees the caller's work, not the timing's."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops():
        layer, x = _gru()
        with FlopCounterMode(display=False) as counter:
            layer(x)[0].sum().backward()
        return counter.get_total_flops()

    tuned = flops()
    assert timings == []
    autotune.forget()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RNNKIT_AUTOTUNE", "0")
        assert flops() == tuned


def test_autocast(timings, native_static):
    layer, x = _gru()
    layer, x = layer.float(), x.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        registry.resolve_backend("auto", layer, x, None)
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert timings == [] and not torch.is_autocast_enabled("cpu")


def test_refusals_are_cheap_checks_of_the_current_state():
    from rnnkit.engine.timing import timing_refused

    x = torch.randn(3, 2, 4)
    assert timing_refused(x) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "autocast" in timing_refused(x)
    assert "subclass" in timing_refused(torch.nn.Parameter(x).as_subclass(_Sub))


class _Sub(torch.Tensor):
    pass


# -- where timing runs, the caller's state is untouched ---------------------------------------------------------


def _weight_norm_old(layer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.nn.utils.weight_norm(layer, "weight_hh_l0")  # a forward pre-hook sets a non-leaf weight


def _weight_norm(layer):
    torch.nn.utils.parametrizations.weight_norm(layer, "weight_hh_l0")


def _spectral_norm(layer):
    torch.nn.utils.parametrizations.spectral_norm(layer, "weight_hh_l0")


class _Bounded(torch.nn.Module):
    def forward(self, w):
        return torch.tanh(w)


def _custom(layer):
    parametrize.register_parametrization(layer, "weight_hh_l0", _Bounded())


def _training_step(make, wrap, backend: str, cached: bool = False):
    """One training step on a fresh layer: its output, gradients and (spectral norm's) state afterwards."""
    torch.manual_seed(0)
    layer = rnnkit.LSTM(4, 8, 2, dropout=0.3, backend=backend).double()
    make(layer)
    x = torch.randn(20, 5, 4, dtype=torch.float64, requires_grad=True)
    hook_calls = []
    weight = layer.weight_ih_l0
    weight.register_hook(lambda g: hook_calls.append(1))
    forward_calls = []
    layer.register_forward_hook(lambda *a: forward_calls.append(1))
    torch.manual_seed(3)
    context = parametrize.cached() if cached else torch.enable_grad()
    with context:
        out, _ = wrap(layer)(x)
        out.square().sum().backward()
    state = {name: b.clone() for name, b in layer.named_buffers()}
    grads = {name: p.grad for name, p in layer.named_parameters()}
    return out.detach(), x.grad, grads, state, torch.rand(4), len(hook_calls), len(forward_calls)


@pytest.mark.parametrize("make,cached", [(_weight_norm_old, False), (_weight_norm, False), (_spectral_norm, False),
                                         (_custom, False), (_weight_norm, True), (_spectral_norm, True),
                                         (_custom, True)])
def test_parametrized_weights(timings, make, cached):
    """``cached``: inside ``parametrize.cached()``, where a parametrized weight is computed once per context."""
    got = _training_step(make, lambda m: m, "auto", cached)  # first call of the kind: timed, on stand-ins
    assert len(timings) == 1
    chosen = autotune.table()  # the decision the call ran on
    (entry,) = chosen.values()
    expect = _training_step(make, lambda m: m, entry["backend"], cached)
    torch.testing.assert_close(got[0], expect[0])
    torch.testing.assert_close(got[1], expect[1])
    for name, grad in expect[2].items():
        torch.testing.assert_close(got[2][name], grad, msg=name)
    for name, buffer in expect[3].items():  # spectral norm's power iteration ran as often as without timing
        assert torch.equal(got[3][name], buffer), name
    assert torch.equal(got[4], expect[4])  # the random stream continues where it would have
    assert got[5:] == (1, 1)  # the weight's tensor hook and the module's forward hook fired once each


def test_hooks_and_graph_of_a_plain_layer(timings):
    got = _training_step(lambda m: None, lambda m: m, "auto")
    assert len(timings) == 1 and got[5:] == (1, 1)
    assert all(g is not None for g in got[2].values())
