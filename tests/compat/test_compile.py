"""torch.compile of rnnkit's layers: outputs and gradients equal to eager, on every back end.

Compiling costs seconds a model on two cores, so the grid uses the ``aot_eager`` compiler (dynamo and
AOTAutograd with the operators' fake kernels, no code generation) and one tiny GRU goes through inductor,
torch.compile's default, with ``fullgraph=True`` (the call that used to corrupt the heap).
"""

from __future__ import annotations

import pytest
import torch

from .conftest import BACKENDS, LAYERS, B, D, H, T, make


def _outputs_and_grads(module, x):
    module.zero_grad()
    x = x.clone().requires_grad_(True)
    out, state = module(x)
    states = state if isinstance(state, tuple) else (state,)
    loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum() + sum(s.sin().sum() for s in states)
    loss.backward()
    return [out, *states, x.grad, *(p.grad for p in module.parameters())]


def _check_compiled(kind, rnnkit_backend, **compile_args):
    torch._dynamo.reset()
    layer, _ = make(kind, rnnkit_backend, batch_first=True)
    x = torch.randn(B, T, D)
    compiled = _outputs_and_grads(torch.compile(layer, **compile_args), x)
    eager = _outputs_and_grads(layer, x)
    for got, want in zip(compiled, eager, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(LAYERS))
def test_compiled_equals_eager(kind, backend):
    _check_compiled(kind, backend, backend="aot_eager")


def test_inductor_fullgraph_fused():
    _check_compiled("gru", "fused", fullgraph=True)


def test_fused_compiles_without_graph_breaks():
    torch._dynamo.reset()
    layer, _ = make("gru", "fused", batch_first=True)
    explained = torch._dynamo.explain(layer)(torch.randn(B, T, D))
    assert explained.graph_break_count == 0, explained.break_reasons
    ops = {str(node.target) for graph in explained.graphs for node in graph.graph.nodes}
    assert "rnnkit.fused_recurrence.default" in ops


def test_compiled_fused_with_lengths_equals_eager():
    torch._dynamo.reset()
    layer, _ = make("lstm", "fused", bidirectional=True)
    x, lengths = torch.randn(4, 3, D), torch.tensor([4, 2, 3])
    compiled = torch.compile(layer, backend="aot_eager")
    for got, want in zip(compiled(x, lengths=lengths)[1], layer(x, lengths=lengths)[1], strict=True):
        torch.testing.assert_close(got, want)


def test_extras_under_compile_go_to_another_back_end():
    """The extras kernels are not an operator: ``auto`` runs them elsewhere, forced ``fused`` says why."""
    from rnnkit import LSTM

    torch._dynamo.reset()
    x = torch.randn(T, B, D)
    auto = LSTM(D, H, layer_norm=True)
    torch.testing.assert_close(torch.compile(auto, backend="aot_eager")(x)[0], auto(x)[0])
    forced = LSTM(D, H, layer_norm=True, backend="fused")
    with pytest.raises(ValueError, match="not a registered operator"):
        torch.compile(forced, backend="aot_eager")(x)


def test_compiling_first_in_a_fresh_process_has_no_graph_breaks():
    """Nothing ran eagerly before the compiler traces: the kernels' loading must still be a constant to it.

    The fused back end marks those constants only on its compile path (``engine/fused/compile_constants.py``), so
    ``import rnnkit`` does not import ``torch._dynamo``; here this process's loaded kernels cannot help.
    """
    from tests.cli.test_help_without_torch import python

    code = ("import torch, rnnkit\nlayer = rnnkit.GRU(3, 8, backend='fused', batch_first=True)\n"
            "explained = torch._dynamo.explain(layer)(torch.randn(4, 5, 3))\n"
            "print(explained.graph_break_count, [str(r.reason).splitlines()[0] for r in explained.break_reasons])")
    assert python(code).splitlines()[-1] == "0 []"
