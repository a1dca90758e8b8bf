"""minGRU and minLSTM: the scan against the step loop, golden values, gradients, padding, stepping."""

import math

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.cells.linear_scan import LOG_CHUNK, scan_gated, scan_linear, scan_log
from rnnkit.cells.minimal import g

LAYERS = {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}
CELLS = {"mingru": rnnkit.MinGRUCell, "minlstm": rnnkit.MinLSTMCell}
KINDS = [(kind, form) for kind in LAYERS for form in ("plain", "log")]
# Every whole-sequence back end each form runs on (the log-space scan needs the positive form).
SCANS = [(kind, form, backend) for kind, form in KINDS for backend in ("scan", "log-scan") if form == "log" or
         backend == "scan"]
D, H = 3, 4


def _layer(kind, form, **kw):
    torch.manual_seed(0)
    return LAYERS[kind](D, H, form=form, **kw).double()


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


def test_parameters_are_torch_like_with_no_hidden_to_hidden_weights():
    layer = rnnkit.MinLSTM(D, H, num_layers=2, bidirectional=True)
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert shapes["weight_ih_l0"] == (3 * H, D) and shapes["bias_ih_l0_reverse"] == (3 * H,)
    assert shapes["weight_ih_l1"] == (3 * H, 2 * H)
    assert not any("hh" in name for name in shapes)
    assert tuple(rnnkit.MinGRU(D, H, bias=False).weight_ih_l0.shape) == (2 * H, D)
    assert not any("bias" in name for name, _ in rnnkit.MinGRU(D, H, bias=False).named_parameters())


@pytest.mark.parametrize("kind,form,backend", SCANS)
@pytest.mark.parametrize("batch_first,stepwise_min", [(False, 0), (True, 10**9)])
def test_layer_scan_equals_reference_bidirectional_multilayer_with_lengths_and_h0(kind, form, backend, batch_first,
                                                                                  stepwise_min, monkeypatch):
    import rnnkit.cells.linear_scan as linear_scan

    monkeypatch.setattr(linear_scan, "STEPWISE_MIN", stepwise_min)  # the step loop, then the pairwise scan
    scan = _layer(kind, form, num_layers=2, bidirectional=True, batch_first=batch_first, backend=backend)
    ref = _layer(kind, form, num_layers=2, bidirectional=True, batch_first=batch_first, backend="reference")
    ref.load_state_dict(scan.state_dict())
    x = torch.randn(7, 5, D, dtype=torch.float64)
    x = x.transpose(0, 1) if batch_first else x
    h0 = torch.randn(4, 5, H, dtype=torch.float64).abs()
    lengths = torch.tensor([7, 3, 5, 1, 6])
    (o1, h1), (o2, h2) = scan(x, h0, lengths=lengths), ref(x, h0, lengths=lengths)
    torch.testing.assert_close(o1, o2, atol=1e-12, rtol=0)
    torch.testing.assert_close(h1, h2, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind,form", KINDS)
def test_padding_never_changes_a_result(kind, form):
    layer = _layer(kind, form, bidirectional=True, batch_first=True)
    x = torch.randn(3, 8, D, dtype=torch.float64)
    lengths = torch.tensor([8, 3, 5])
    out, h_n = layer(x, lengths=lengths)
    noisy = x.clone()
    for b, n in enumerate(lengths.tolist()):
        noisy[b, n:] = torch.randn_like(noisy[b, n:]) * 100
    out2, h_n2 = layer(noisy, lengths=lengths)
    torch.testing.assert_close(out, out2, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_n, h_n2, atol=1e-12, rtol=0)
    for b, n in enumerate(lengths.tolist()):
        alone, h_alone = layer(x[b:b + 1, :n])  # each row alone, cut to its length
        torch.testing.assert_close(out[b:b + 1, :n], alone, atol=1e-12, rtol=0)
        torch.testing.assert_close(h_n[:, b:b + 1], h_alone, atol=1e-12, rtol=0)
        assert bool((out[b, n:] == 0).all())
    # The reverse direction starts at each row's own last token: row 1's backward state after reading token 0
    # is the forward state of its reversed, cut sequence through the reverse weights.
    rev = LAYERS[kind](D, H, form=form, batch_first=True).double()
    rev.load_state_dict({"weight_ih_l0": layer.weight_ih_l0_reverse, "bias_ih_l0": layer.bias_ih_l0_reverse})
    _, h_rev = rev(x[1:2, :3].flip(1))
    torch.testing.assert_close(out[1, 0, H:], h_rev[0, 0], atol=1e-12, rtol=0)
    # A PackedSequence gives the same outputs and states (rows in any order).
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_p, h_p = layer(packed)
    torch.testing.assert_close(pad_packed_sequence(out_p, batch_first=True, total_length=8)[0], out)
    torch.testing.assert_close(h_p, h_n)


@pytest.mark.parametrize("kind,form", KINDS)
def test_stepping_one_token_at_a_time_equals_the_whole_sequence(kind, form):
    layer = _layer(kind, form, num_layers=2)
    x = torch.randn(12, 2, D, dtype=torch.float64)
    whole, h_whole = layer(x)
    state, outs = None, []
    for t in range(12):
        out, state = layer(x[t:t + 1], state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs), whole, atol=1e-12, rtol=0)
    torch.testing.assert_close(state, h_whole, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind,form,backend", SCANS)
def test_gradcheck_through_the_scan(kind, form, backend):
    layer = _layer(kind, form, bidirectional=True, backend=backend)
    names = ["weight_ih_l0", "bias_ih_l0_reverse"]
    params = {name: p.detach() for name, p in layer.named_parameters()}
    lengths = torch.tensor([5, 2, 4])

    def run(x, h0, w, b):
        out, h_n = functional_call(layer, {**params, names[0]: w, names[1]: b}, (x, h0), {"lengths": lengths})
        return out, h_n

    x = torch.randn(5, 3, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 3, H, dtype=torch.float64, requires_grad=True)
    w, b = (params[n].clone().requires_grad_() for n in names)
    assert torch.autograd.gradcheck(run, (x, h0, w, b))


def test_trace_records_the_gates_on_the_reference():
    layer = _layer("minlstm", "plain")
    x = torch.randn(6, 2, D, dtype=torch.float64)
    trace = layer.trace(x, lengths=[6, 4])
    steps = trace[0, 0]
    assert set(steps) == {"f", "i", "cand", "h"}
    torch.testing.assert_close(steps["f"][:, :4] + steps["i"][:, :4], torch.ones(2, 4, H, dtype=torch.float64))
    torch.testing.assert_close(trace.output, layer(x, lengths=[6, 4])[0], atol=1e-12, rtol=0)


def test_unbatched_input_and_arguments_are_checked():
    layer = _layer("mingru", "plain")
    x = torch.randn(5, D, dtype=torch.float64)
    out, h_n = layer(x)
    assert out.shape == (5, H) and h_n.shape == (1, H)
    torch.testing.assert_close(out, layer(x.unsqueeze(1))[0].squeeze(1))
    with pytest.raises(ValueError, match="backend must be one of .*got 'native'"):
        rnnkit.MinGRU(D, H, backend="native")
    with pytest.raises(ValueError, match="form must be one of .*got 'exp'"):
        rnnkit.MinLSTM(D, H, form="exp")
    with pytest.raises(ValueError, match="backend 'log-scan' needs form='log'"):
        rnnkit.MinLSTM(D, H, backend="log-scan")
    with pytest.raises(ValueError, match="backend 'log-scan' needs form='log'"):
        rnnkit.MinGRUCell(D, H).sequence(torch.randn(2, 1, D), backend="log-scan")
    with pytest.raises(ValueError, match="hx must have shape"):
        layer(torch.randn(5, 2, D, dtype=torch.float64), torch.zeros(2, 2, H, dtype=torch.float64))


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


def test_auto_takes_the_log_space_scan_for_the_log_form_off_the_cpu_only():
    from rnnkit.engine.fused.build import failure
    from rnnkit.layers.minimal import resolve

    cpu, meta = torch.empty(1), torch.empty(1, device="meta")
    on_cpu = "fused" if failure() is None else "scan"  # the C++ gated scan where its kernels are built
    assert resolve("auto", "log", cpu) == on_cpu and resolve("auto", "log", meta) == "log-scan"
    assert resolve("auto", "plain", meta) == "scan" and resolve("reference", "log", meta) == "reference"


@pytest.mark.parametrize("kind", list(LAYERS))
def test_under_autocast_the_state_keeps_the_input_dtype_so_it_can_be_carried(kind):
    layer = LAYERS[kind](D, H, num_layers=2)
    x = torch.randn(6, 2, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = layer(x)
        out2, state2 = layer(x, state)  # the next window, its state carried
    assert out.dtype == state.dtype == state2.dtype == torch.float32
    torch.testing.assert_close(out2, layer(x, state)[0], atol=0.1, rtol=0.1)
