"""minGRU and minLSTM cells: the linear scans against the step loop, golden values, the scans' gradients."""

import math

import pytest
import torch

import rnnkit
from rnnkit.cells.linear_scan import LOG_CHUNK, scan_gated, scan_linear, scan_log
from rnnkit.cells.minimal import g

CELLS = {"mingru": rnnkit.MinGRUCell, "minlstm": rnnkit.MinLSTMCell}
KINDS = [(kind, form) for kind in CELLS for form in ("plain", "log")]
# Every whole-sequence back end each form runs on (the log-space scan needs the positive form).
SCANS = [(kind, form, backend) for kind, form in KINDS for backend in ("scan", "log-scan") if form == "log" or
         backend == "scan"]
D, H = 3, 4


def _loop(a, b, h0):
    h, out = h0, []
    for a_t, b_t in zip(a, b, strict=True):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8, 17, 100])
def test_pairwise_scan_equals_the_loop(steps):
    torch.manual_seed(steps)
    a, b, h0 = torch.rand(steps, 2, 3, dtype=torch.float64), torch.randn(steps, 2, 3, dtype=torch.float64), \
        torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(scan_linear(a, b, h0), _loop(a, b, h0), atol=1e-12, rtol=0)
    torch.testing.assert_close(scan_linear(a, b), _loop(a, b, torch.zeros(2, 3, dtype=torch.float64)))


@pytest.mark.parametrize("steps", [1, LOG_CHUNK, 2 * LOG_CHUNK + 7])
def test_log_scan_equals_the_loop_across_chunks(steps):
    torch.manual_seed(steps)
    a, b = torch.rand(steps, 2, 3, dtype=torch.float64), torch.rand(steps, 2, 3, dtype=torch.float64) + 0.1
    h0 = torch.randn(2, 3, dtype=torch.float64)  # enters linearly: any sign is allowed
    torch.testing.assert_close(scan_log(a.log(), b.log(), h0), _loop(a, b, h0), atol=1e-12, rtol=1e-12)


def test_log_scan_in_float32_stays_accurate_over_long_strongly_forgetting_sequences():
    torch.manual_seed(0)
    steps = 2048
    a = torch.sigmoid(torch.randn(steps, 4, 8, dtype=torch.float64) * 4 - 4)  # many a_t near 0
    b = torch.rand(steps, 4, 8, dtype=torch.float64) + 0.5
    exact = _loop(a, b, torch.zeros(4, 8, dtype=torch.float64))
    got = scan_log(a.log().float(), b.log().float()).double()
    assert float(((got - exact).abs() / exact).max()) < 1e-4


@pytest.mark.parametrize("kind,form,backend", SCANS)
def test_cell_sequence_scan_equals_step_loop(kind, form, backend):
    torch.manual_seed(1)
    cell = CELLS[kind](D, H, form=form).double()
    x, h0 = torch.randn(9, 4, D, dtype=torch.float64), torch.randn(4, H, dtype=torch.float64).abs()
    lengths = [9, 2, 5, 1]
    out_s, h_s = cell.sequence(x, h0, lengths, backend=backend)
    out_r, h_r = cell.sequence(x, h0, lengths, backend="reference")
    torch.testing.assert_close(out_s, out_r, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_s, h_r, atol=1e-12, rtol=0)
    # The one-step API, carried by hand, gives the same states.
    h = h0[:1]
    for t in range(9):
        h = cell(x[t, :1], h)
    torch.testing.assert_close(h, h_s[:1], atol=1e-12, rtol=0)


def _golden(cell_type, form, bias):
    """A 1-unit cell with hand-set weights, two steps x = 1, 3 from h0 = 0; the candidate weight is 2."""
    cell = cell_type(1, 1, form=form).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor([[0.0]] * (cell.gates - 1) + [[2.0]]))
        cell.bias_ih.copy_(torch.tensor(bias, dtype=torch.float64))
    out, _ = cell.sequence(torch.tensor([[[1.0]], [[3.0]]], dtype=torch.float64))
    ref, _ = cell.sequence(torch.tensor([[[1.0]], [[3.0]]], dtype=torch.float64), backend="reference")
    return out.flatten().tolist(), ref.flatten().tolist()


def test_golden_values_from_hand_arithmetic():
    # minGRU, z = σ(0) = 1/2, h̃ = 2, 6: h1 = ½·0 + ½·2 = 1, h2 = ½·1 + ½·6 = 3.5.
    for got in _golden(rnnkit.MinGRUCell, "plain", [0.0, 0.0]):
        assert got == pytest.approx([1.0, 3.5], abs=1e-12)
    # Log form: h̃ = g(2) = 2.5, g(6) = 6.5: h1 = 1.25, h2 = 0.625 + 3.25 = 3.875.
    for got in _golden(rnnkit.MinGRUCell, "log", [0.0, 0.0]):
        assert got == pytest.approx([1.25, 3.875], abs=1e-12)
    # minLSTM, f = σ(ln 3) = 3/4, i = 1/2: f' = 0.6, i' = 0.4; h1 = 0.4·2 = 0.8, h2 = 0.6·0.8 + 0.4·6 = 2.88.
    for got in _golden(rnnkit.MinLSTMCell, "plain", [math.log(3.0), 0.0, 0.0]):
        assert got == pytest.approx([0.8, 2.88], abs=1e-12)
    # Negative candidates in the log form go through σ: g(-2) = σ(-2).
    assert g(torch.tensor([-2.0, 0.0, 1.5])).tolist() == pytest.approx([1 / (1 + math.e ** 2), 0.5, 2.0])


@pytest.mark.parametrize("algorithm", ["pairwise", "stepwise"])
@pytest.mark.parametrize("steps", [1, 2, 7, 16])
def test_both_scan_algorithms_and_their_adjoint_pass_gradcheck(algorithm, steps, monkeypatch):
    import rnnkit.cells.linear_scan as linear_scan

    monkeypatch.setattr(linear_scan, "STEPWISE_MIN", 0 if algorithm == "stepwise" else 10**9)
    torch.manual_seed(steps)
    a = torch.rand(steps, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(steps, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    a_, b_, h0_ = a.detach(), b.detach(), h0.detach()
    torch.testing.assert_close(linear_scan.solve(a_, b_, algorithm=algorithm), _loop(a_, b_, h0_ * 0))
    torch.testing.assert_close(linear_scan.solve(a_, b_, h0_, algorithm=algorithm), _loop(a_, b_, h0_))
    backwards = linear_scan.solve(a_, b_, h0_, reverse=True, algorithm=algorithm)
    torch.testing.assert_close(backwards, _loop(a_.flip(0), b_.flip(0), h0_).flip(0))
    assert torch.autograd.gradcheck(scan_linear, (a, b, h0))
    assert torch.autograd.gradcheck(lambda a, b: scan_linear(a, b), (a, b))
    # The gated form: a = 1 − σ(u), b = σ(u) ⊙ c, with its own adjoint.
    u = b.detach().clone().requires_grad_()
    torch.testing.assert_close(scan_gated(u, b, h0), scan_linear(1 - torch.sigmoid(u), torch.sigmoid(u) * b, h0))
    assert torch.autograd.gradcheck(scan_gated, (u, b, h0))
    assert torch.autograd.gradcheck(lambda u, c: scan_gated(u, c), (u, b))
    assert torch.autograd.gradcheck(lambda la, lb, h: scan_log(la, lb, h, chunk=3), (a.detach().log().requires_grad_(),
                                                                                    b.detach(), h0))
