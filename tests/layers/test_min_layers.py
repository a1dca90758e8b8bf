"""minGRU and minLSTM layers: the scans against the reference, padding, stepping, gradients, trace, arguments."""

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from tests.cells.test_min_cells import KINDS, SCANS, D, H

LAYERS = {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}


def _layer(kind, form, **kw):
    torch.manual_seed(0)
    return LAYERS[kind](D, H, form=form, **kw).double()


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
