"""Layer behaviour beyond torch.nn equivalence: padding invariance, gradcheck, state dicts, trace."""

import math

import pytest
import torch

import rnnkit
from rnnkit.layers.trace import SERIES, gather_series
from tests.helpers import KINDS, as_tuple

D, H = 3, 4


@pytest.mark.parametrize("backend", rnnkit.available_backends())
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("batch_first", [False, True])
def test_padding_invariance(kind, backend, batch_first):
    """Extra padding steps, filled with garbage, change no output, state or gradient."""
    layer = KINDS[kind][0](input_size=D, hidden_size=H, num_layers=2, bidirectional=True,
                           batch_first=batch_first, backend=backend).double()
    lengths = torch.tensor([3, 5, 1])
    x = torch.randn(5, 3, D, dtype=torch.float64)
    extra = torch.randn(4, 3, D, dtype=torch.float64) * 100  # garbage padding must not matter

    results = []
    for inp in (x, torch.cat([x, extra])):
        inp = inp.transpose(0, 1) if batch_first else inp
        inp = inp.clone().requires_grad_(True)
        layer.zero_grad()
        out, state = layer(inp, lengths=lengths)
        t_axis = 1 if batch_first else 0
        valid = out.narrow(t_axis, 0, 5)
        g = torch.Generator().manual_seed(3)
        loss = (valid * torch.randn(valid.shape, generator=g, dtype=valid.dtype)).sum()
        loss = loss + sum((s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum() for s in as_tuple(state))
        loss.backward()
        assert out.narrow(t_axis, 5, out.shape[t_axis] - 5).abs().sum() == 0
        results.append((valid.detach(), [s.detach() for s in as_tuple(state)],
                        inp.grad.narrow(t_axis, 0, 5), inp.grad.narrow(t_axis, 5, inp.shape[t_axis] - 5),
                        {n: p.grad.clone() for n, p in layer.named_parameters()}))
    (o1, s1, gx1, _, gp1), (o2, s2, gx2, gpad2, gp2) = results
    torch.testing.assert_close(o1, o2, atol=1e-12, rtol=0)
    for a, b in zip(s1, s2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    torch.testing.assert_close(gx1, gx2, atol=1e-12, rtol=0)
    assert gpad2.abs().sum() == 0
    for name in gp1:
        torch.testing.assert_close(gp1[name], gp2[name], atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", rnnkit.available_backends())
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_gradcheck_bidirectional_two_layers_with_lengths(kind, backend):
    layer = KINDS[kind][0](input_size=2, hidden_size=3, num_layers=2, bidirectional=True,
                           backend=backend).double()
    names = [n for n, _ in layer.named_parameters()]
    lengths = torch.tensor([4, 2, 3])
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)

    def fn(x, *params):
        out, state = torch.func.functional_call(layer, dict(zip(names, params, strict=True)), (x,),
                                                {"lengths": lengths})
        return (out, *as_tuple(state))

    assert torch.autograd.gradcheck(fn, (x, *[p.detach().requires_grad_(True) for p in layer.parameters()]))


@pytest.mark.parametrize("kind", list(KINDS))
def test_state_dict_round_trips_with_torch_nn(kind):
    ours_cls, theirs_cls = KINDS[kind]
    kw = dict(input_size=D, hidden_size=H, num_layers=2, bidirectional=True)
    ours, theirs = ours_cls(**kw), theirs_cls(**kw)
    # torch.nn -> rnnkit
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(5, 2, D)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    # rnnkit -> torch.nn, strict keys both ways
    fresh = theirs_cls(**kw)
    fresh.load_state_dict(ours.state_dict())
    assert set(ours.state_dict()) == set(theirs.state_dict())
    assert all(ours.state_dict()[k].shape == v.shape for k, v in theirs.state_dict().items())
    torch.testing.assert_close(fresh(x)[0], ours(x)[0])


def test_native_backend_shares_parameters_without_copy():
    layer = rnnkit.LSTM(D, H, backend="native")
    out, _ = layer(torch.randn(4, 2, D))
    out.sum().backward()
    assert layer.weight_hh_l0.grad is not None and layer.weight_hh_l0.grad.abs().sum() > 0
    with torch.no_grad():
        layer.weight_ih_l0.zero_()
        layer.weight_hh_l0.zero_()
        layer.bias_ih_l0.zero_()
        layer.bias_hh_l0.zero_()
    out, (h, c) = layer(torch.randn(4, 2, D))
    assert out.abs().sum() == 0  # an in-place change to our weights is seen by the kernel at once


def test_auto_backend_runs_and_reference_is_named():
    assert "reference" in rnnkit.available_backends() and "native" in rnnkit.available_backends()
    assert rnnkit.available_backends()[-1] == "reference"


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_trace_matches_output_and_zero_past_length(kind):
    layer = KINDS[kind][0](input_size=D, hidden_size=H, num_layers=2, bidirectional=True, batch_first=True)
    lengths = torch.tensor([5, 2])
    x = torch.randn(2, 5, D)
    trace = layer.trace(x, lengths=lengths)
    out, _ = layer(x, lengths=lengths)
    torch.testing.assert_close(trace.output, out)
    top_fw, top_bw = trace[1, 0], trace[1, 1]
    torch.testing.assert_close(torch.cat([top_fw["h"], top_bw["h"]], dim=2), out)
    gate_names = {"lstm": {"i", "f", "g", "o", "c"}, "gru": {"r", "z", "n"}, "rnn_tanh": {"pre"}}[kind]
    assert gate_names <= set(top_fw)
    for series in top_bw.values():
        assert series.shape[:2] == (2, 5)
        assert series[1, 2:].abs().sum() == 0
    if kind == "lstm":
        # The reverse direction's state at token 0 is its final state; h = o * tanh(c) at every step.
        torch.testing.assert_close(top_fw["h"], top_fw["o"] * torch.tanh(top_fw["c"]))


@pytest.mark.parametrize("layer_type", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN, rnnkit.MinGRU, rnnkit.MinLSTM])
def test_a_trace_holds_the_states_and_exactly_the_series_its_cell_declares(layer_type):
    # What serve accepts in ``include=`` and the explorer names is gathered from these declarations.
    layer = layer_type(D, H, bidirectional=True)
    cell = layer.cell_for(0, 0)
    states = {"h", "c"} if cell.state_count == 2 else {"h"}
    for record in (layer.trace(torch.randn(4, 2, D))[0, d] for d in (0, 1)):
        assert set(record) == states | set(cell.trace_series)
    assert set(record) <= set(SERIES)


def test_one_series_name_means_one_thing_across_cells():
    class Renamed(rnnkit.GRUCell):
        trace_series = {"r": "reset gate", "z": "update gate", "n": "new gate"}

    assert gather_series([rnnkit.GRUCell])["n"] == "candidate"
    with pytest.raises(ValueError, match="Renamed.trace_series calls 'n' 'new gate', another cell calls it "
                                         "'candidate'"):
        gather_series([rnnkit.GRUCell, Renamed])


def test_custom_cell_runs_through_generic_layer():
    class ScaledRNNCell(rnnkit.RNNCell):
        """A custom cell: the native kernels do not know it, so auto falls back to the reference loop."""

        def step(self, x, state, p, record=None):
            h, _ = super().step(x, state, p, record)
            return 0.5 * h, (0.5 * h,)

    layer = rnnkit.Recurrent(ScaledRNNCell, 2, 3)
    x = torch.randn(4, 1, 2)
    out, h = layer(x)
    plain = rnnkit.RNN(2, 3)
    plain.load_state_dict(layer.state_dict())
    plain_out = plain(x)[0]
    # Same weights, same input: from a zero state the first step is the plain one halved; after that the halved
    # state feeds back, so the sequences part ways (they would agree if the custom step were skipped).
    torch.testing.assert_close(out[0], 0.5 * plain_out[0])
    assert not torch.allclose(out[1:], 0.5 * plain_out[1:])
    with pytest.raises(ValueError, match="backend='native' cannot run"):
        rnnkit.Recurrent(ScaledRNNCell, 2, 3, backend="native")(torch.randn(4, 1, 2))


def test_layer_golden_two_steps():
    # A one-unit simple RNN over two steps with constant weights, by hand.
    layer = rnnkit.RNN(1, 1, backend="reference").double()
    with torch.no_grad():
        layer.weight_ih_l0.fill_(0.5)
        layer.weight_hh_l0.fill_(-1.0)
        layer.bias_ih_l0.fill_(0.25)
        layer.bias_hh_l0.fill_(0.0)
    out, h = layer(torch.tensor([[[1.0]], [[2.0]]], dtype=torch.float64))
    s1 = math.tanh(0.5 + 0.25)
    s2 = math.tanh(1.0 - s1 + 0.25)
    assert out.flatten().tolist() == pytest.approx([s1, s2], abs=1e-15)
    assert h.item() == pytest.approx(s2, abs=1e-15)
