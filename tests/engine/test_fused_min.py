"""The minimal cells' fused gated scan (``rnnkit.engine.fused.gated_scan``) against the scan and the step loop."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import rnnkit
from rnnkit.engine.fused.gated_scan import gated_scan, gated_scan_backward_op, gated_scan_op
from rnnkit.layers.minimal import resolve

from .conftest import assert_same, run_all

LAYERS = {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}
KINDS = [(kind, form) for kind in LAYERS for form in ("plain", "log")]
D, H = 3, 5


def _layer(kind, form, **kw):
    torch.manual_seed(0)
    return LAYERS[kind](D, H, form=form, **kw).double()


def _results(layer, backend, x, h0, lengths):
    return run_all(layer, backend, x, None if h0 is None else (h0,), lengths)


@pytest.mark.parametrize("kind,form", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_fused_equals_scan_and_reference(kind, form, bidirectional, batch_first):
    """Outputs, h_n and the gradients of input, h0 and every weight; lengths unsorted with a length-1 row."""
    layer = _layer(kind, form, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    dirs = 2 if bidirectional else 1
    torch.manual_seed(1)
    steps, batch = 6, 4
    x = torch.randn((batch, steps, D) if batch_first else (steps, batch, D), dtype=torch.float64)
    h0 = torch.randn(2 * dirs, batch, H, dtype=torch.float64)
    if form == "log":
        h0 = h0.abs()  # the log form's states are positive
    for lengths in (None, torch.tensor([3, 6, 1, 5])):
        fused = _results(layer, "fused", x, h0, lengths)
        assert_same(fused, _results(layer, "scan", x, h0, lengths))
        assert_same(fused, _results(layer, "reference", x, h0, lengths))
    assert_same(_results(layer, "fused", x, None, None), _results(layer, "reference", x, None, None))


def test_rows_split_across_threads_equal_one_block(two_threads):
    """Batch 16: the kernel cuts the rows into blocks on two threads; the result is the scan's."""
    layer = _layer("minlstm", "plain", bidirectional=True)
    x = torch.randn(9, 16, D, dtype=torch.float64)
    lengths = torch.randint(1, 10, (16,))
    for given in (None, lengths):
        assert_same(_results(layer, "fused", x, None, given), _results(layer, "scan", x, None, given))


def test_float32_matches_the_scan():
    torch.manual_seed(0)
    layer = rnnkit.MinGRU(D, H, bidirectional=True)
    x, lengths = torch.randn(7, 3, D), torch.tensor([7, 2, 5])
    assert_same(_results(layer, "fused", x, None, lengths), _results(layer, "scan", x, None, lengths),
                atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind,form", KINDS)
def test_gradcheck(kind, form):
    layer = _layer(kind, form, bidirectional=True, backend="fused")
    x = torch.randn(5, 3, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 3, H, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([2, 5, 1])
    assert torch.autograd.gradcheck(lambda x, h0: layer(x, h0, lengths=lengths)[0], (x, h0))
    assert torch.autograd.gradcheck(lambda x, h0: layer(x, h0)[1], (x, h0))


def _scan_inputs(steps=5, batch=3, dtype=torch.float64):
    torch.manual_seed(0)
    return [torch.randn(steps, batch, H, dtype=dtype, requires_grad=True) for _ in range(2)] + [
        torch.randn(batch, H, dtype=dtype, requires_grad=True)]


def test_second_derivatives_through_the_recorded_backward():
    u, c, h0 = _scan_inputs()
    lengths = torch.tensor([5, 1, 3])
    assert torch.autograd.gradgradcheck(lambda u, c, h0: gated_scan(u, c, h0, lengths), (u, c, h0))


@pytest.mark.parametrize("lengths", [None, [4, 1, 5]])
def test_opcheck(lengths):
    u, c, h0 = _scan_inputs()
    given = None if lengths is None else torch.tensor(lengths)
    torch.library.opcheck(gated_scan_op, (u, c, h0, given))
    out, _ = gated_scan_op(u, c, h0, given)
    d_out, d_hn = torch.randn_like(out), torch.randn_like(h0)
    torch.library.opcheck(gated_scan_backward_op, (d_out, d_hn, u.detach(), c.detach(), h0.detach(),
                                                   out.detach(), given))


@pytest.mark.parametrize("lengths", [None, [4, 1, 5]])
def test_the_halves_of_one_projection_are_read_in_place(lengths):
    """u and c as views of one (T, B, 2H) tensor (minGRU's chunks): the same results as contiguous copies."""
    torch.manual_seed(0)
    proj = torch.randn(5, 3, 2 * H, dtype=torch.float64, requires_grad=True)
    u, c = proj.chunk(2, dim=-1)
    h0 = torch.randn(3, H, dtype=torch.float64)
    given = None if lengths is None else torch.tensor(lengths)
    viewed = gated_scan_op(u, c, h0, given)
    copied = gated_scan_op(u.contiguous(), c.contiguous(), h0, given)
    assert_same(list(viewed), list(copied))
    grads = [torch.autograd.grad(out[0].sum() + out[1].sum(), proj)[0] for out in (viewed, copied)]
    assert_same(grads[:1], grads[1:])
    torch.library.opcheck(gated_scan_op, (u, c, h0, given))


def test_a_view_whose_rows_are_not_where_the_kernel_reads_them_is_refused():
    from rnnkit.engine.fused import boundary

    rows = torch.zeros(5, 3, 2 * H, dtype=torch.float64)[..., :H]
    boundary.check_rows("gated scan", torch.float64, "u", rows, (5, 3, H), 2 * H)
    wider = torch.zeros(5, 3, 3 * H, dtype=torch.float64)[..., :H]
    with pytest.raises(RuntimeError, match=r"gated scan: u is rows 10 apart that its strides \(45, 15, 1\)"):
        boundary.check_rows("gated scan", torch.float64, "u", wider, (5, 3, H), 2 * H)


def test_lengths_outside_the_sequence_are_refused_before_the_kernel():
    u, c, h0 = (t.detach() for t in _scan_inputs())
    with pytest.raises(RuntimeError, match=r"gated scan: lengths \[6, 1, 2\] outside \[0, 5\]"):
        gated_scan_op(u, c, h0, torch.tensor([6, 1, 2]))
    with pytest.raises(RuntimeError, match="gated scan: c is torch.float32, not torch.float64"):
        gated_scan_op(u, c.float(), h0, None)


def test_compiled_fullgraph_has_no_graph_break_and_equals_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = rnnkit.MinGRU(D, H, batch_first=True, backend="fused")
    x = torch.randn(3, 6, D)
    explained = torch._dynamo.explain(layer)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    ops = {str(node.target) for graph in explained.graphs for node in graph.graph.nodes}
    assert "rnnkit.gated_scan.default" in ops
    # Lengths are checked against the input in the layer's shared argument checks (data-dependent: those guards
    # break a graph on every back end), so fullgraph without them.
    for lengths, fullgraph in ((None, True), (torch.tensor([6, 2, 4]), False)):
        torch._dynamo.reset()
        compiled = torch.compile(layer, fullgraph=fullgraph, backend="aot_eager")
        got, want = compiled(x, lengths=lengths), layer(x, lengths=lengths)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)
        got[0].sum().backward()


def test_auto_takes_fused_on_the_cpu_and_forced_fused_says_why_it_cannot_run():
    x = torch.randn(2, 1, D)
    assert resolve("auto", "plain", x) == "fused"
    assert resolve("auto", "log", x.double()) == "fused"
    assert resolve("auto", "plain", x.bfloat16()) == "scan"
    with pytest.raises(ValueError, match="backend='fused' cannot run this layer: .*run float32 and float64"):
        resolve("fused", "plain", x.bfloat16())


def test_a_failed_build_leaves_auto_on_the_scan_and_forced_fused_refused(tmp_path):
    code = ("import warnings, torch, rnnkit\n"
            "warnings.simplefilter('ignore')\n"
            "from rnnkit.layers.minimal import resolve\n"
            "x = torch.randn(3, 2, 4)\n"
            "print(resolve('auto', 'plain', x), rnnkit.MinGRU(4, 5)(x)[0].shape[2])\n"
            "try:\n"
            "    rnnkit.MinGRU(4, 5, backend='fused')(x)\n"
            "except ValueError as err:\n"
            "    print(err)\n")
    env = {**os.environ, "CXX": "/bin/false", "RNNKIT_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "scan 5"
    assert lines[1].startswith("backend='fused' cannot run this layer: building the fused kernels failed"), lines


def test_the_contract_checks_the_scan_signatures_against_the_library(monkeypatch):
    """A Python-side argument list that the kernel's signature does not have refuses the library."""
    from rnnkit.engine.fused import build, contract

    lib = build.load()
    contract.check(lib)  # as built: agreed
    monkeypatch.setattr(contract, "SCAN_FORWARD", contract.SCAN_FORWARD[:-1])
    with pytest.raises(contract.ContractError, match="scan_forward_args: library 12, Python 11"):
        contract.check(lib)
    monkeypatch.setattr(contract, "SCAN_FORWARD", (*contract.SCAN_FORWARD, "chunks"))
    monkeypatch.setattr(contract, "SCAN_INTEGERS", tuple(n for n in contract.SCAN_INTEGERS if n != "chunks"))
    with pytest.raises(contract.ContractError, match="scan_forward_integers: library 2135, Python 87"):
        contract.check(lib)
