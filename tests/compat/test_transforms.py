"""torch.export, torch.jit.trace and torch.func on rnnkit's layers, each against plain eager."""

from __future__ import annotations

import pytest
import torch

from .conftest import BACKENDS, LAYERS, B, D, H, T, make


@pytest.mark.parametrize("backend", ["fused", "auto", "native"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_export_round_trip(kind, backend, tmp_path):
    layer, _ = make(kind, backend, batch_first=True)
    x = torch.randn(B, T, D)
    program = torch.export.export(layer.eval(), (x,))
    if backend == "fused":  # the exported graph names the operator, not an opaque Python function
        assert any("rnnkit.fused_recurrence" in str(node.target) for node in program.graph.nodes)
    torch.export.save(program, tmp_path / "layer.pt2")
    loaded = torch.export.load(tmp_path / "layer.pt2").module()
    other = torch.randn(B, T, D)
    torch.testing.assert_close(loaded(other), layer(other))
    if backend == "fused":  # exported with dynamic batch and length, it serves others
        dims = ({0: torch.export.Dim("batch", min=2, max=64), 1: torch.export.Dim("steps", min=2, max=64)},)
        dynamic = torch.export.export(layer, (x,), dynamic_shapes=dims).module()
        larger = torch.randn(9, T + 2, D)
        torch.testing.assert_close(dynamic(larger), layer(larger))


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_jit_trace_round_trip(kind, backend, tmp_path):
    layer, _ = make(kind, backend, batch_first=True)
    x = torch.randn(B, T, D)
    traced = torch.jit.trace(layer.eval(), (x,), check_trace=False)
    if backend == "fused":
        assert "rnnkit::fused_recurrence" in str(traced.graph)
    torch.jit.save(traced, str(tmp_path / "layer.pt"))
    loaded = torch.jit.load(str(tmp_path / "layer.pt"))
    other = torch.randn(B, T, D)
    torch.testing.assert_close(loaded(other), layer(other))
    if backend == "fused":  # the trace serves other batch sizes and lengths, as torch.nn's does
        larger = torch.randn(9, T + 2, D)
        torch.testing.assert_close(loaded(larger), layer(larger))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(LAYERS))
def test_func_grad_equals_autograd(kind, backend):
    layer, _ = make(kind, backend)
    x = torch.randn(T, B, D)
    params = {name: p.detach() for name, p in layer.named_parameters()}

    def loss(params, x):
        out, _ = torch.func.functional_call(layer, params, (x,))
        return (out * out).sum()

    got = torch.func.grad(loss, argnums=(0, 1))(params, x)
    x_eager = x.clone().requires_grad_(True)
    (layer(x_eager)[0] ** 2).sum().backward()
    for name, p in layer.named_parameters():
        torch.testing.assert_close(got[0][name], p.grad, msg=lambda m, n=name: f"{n}: {m}")
    torch.testing.assert_close(got[1], x_eager.grad)


def test_fused_operator_called_directly_has_a_derivative():
    """The operator stands alone: its registered autograd and fake kernel, checked by torch's own opcheck."""
    from rnnkit.engine.fused import ops
    from rnnkit.engine.fused.layout import layout

    torch.manual_seed(0)
    xp = torch.randn(T, B, 3 * 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, 4, dtype=torch.float64, requires_grad=True)
    w_hh = torch.randn(3 * 4, 4, dtype=torch.float64, requires_grad=True)
    b_hh = torch.randn(3 * 4, dtype=torch.float64, requires_grad=True)
    _, rows = layout(None, T, B)
    args = (3, *rows, False, 0, 1, xp, h0, None, w_hh, b_hh, True)
    torch.library.opcheck(ops.fused_recurrence, args, test_utils=("test_schema", "test_autograd_registration",
                                                                   "test_faketensor", "test_aot_dispatch_dynamic"))

    def first_two(xp, h0, w_hh, b_hh):
        return ops.fused_recurrence(3, *rows, False, 0, 1, xp, h0, None, w_hh, b_hh, True)[:2]

    assert torch.autograd.gradcheck(first_two, (xp, h0, w_hh, b_hh))


def test_plain_eager_calls_skip_the_dispatcher(monkeypatch):
    """Eager calls keep the direct path (the dispatcher round trip would cost more than a batch-1 step loop)."""
    from rnnkit.engine.fused import ops

    def refuse(*args, **kwargs):
        raise AssertionError("the operator path ran in plain eager mode")

    monkeypatch.setattr(ops, "run", refuse)
    layer, _ = make("gru", "fused")
    layer(torch.randn(T, B, D))[0].sum().backward()
    with torch.no_grad():
        layer(torch.randn(T, B, D))
    with pytest.raises(AssertionError, match="operator path"):
        torch.jit.trace(layer, (torch.randn(T, B, D),), check_trace=False)


def test_a_new_process_loads_a_saved_trace_after_importing_the_engine(tmp_path):
    """The documented recipe (docs/compatibility.md): ``import rnnkit`` registers nothing, ``rnnkit.engine`` does."""
    from tests.cli.test_help_without_torch import python

    layer, _ = make("gru", "fused", batch_first=True)
    torch.jit.save(torch.jit.trace(layer.eval(), (torch.randn(B, T, D),), check_trace=False), str(tmp_path / "l.pt"))
    code = ("import sys, torch, rnnkit\nregistered = hasattr(torch.ops.rnnkit, 'fused_recurrence')\n"
            "import rnnkit.engine\nloaded = torch.jit.load(sys.argv[1])\n"
            f"print(registered, tuple(loaded(torch.randn(2, {T}, {D}))[0].shape))")
    assert python(code, str(tmp_path / "l.pt")).splitlines()[-1] == f"False (2, {T}, {H})"
