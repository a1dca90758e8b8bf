"""LSTM ``proj_size`` (LSTMP) against torch.nn.LSTM in float64: outputs, finals and gradients.

Written from torch.nn.LSTM's documented semantics: h is projected by ``weight_hr_l{k}`` (proj_size, hidden_size),
h_n has proj_size features and c_n hidden_size, the next layer reads proj_size·dirs features, and the state
dict has torch.nn's keys, so weights load both ways.
"""

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.engine.registry import resolve_backend
from rnnkit.export.recurrent import ExportError, check_exportable

BACKENDS = ["reference", "native", "auto"]  # fused cannot run a projection: see test_fused_refuses_proj_size
D, H, P = 3, 6, 2


@pytest.fixture(autouse=True)
def _quiet():
    # torch warns that oneDNN has no LSTM with projections (its own fallback): expected here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
        yield


def twins(backend, **kwargs):
    torch_lstm = nn.LSTM(D, H, proj_size=P, **kwargs).double()
    ours = rnnkit.LSTM(D, H, proj_size=P, backend=backend, **kwargs).double()
    ours.load_state_dict(torch_lstm.state_dict())
    return torch_lstm, ours


def grads(module, result, x):
    """Gradients of one loss over the output, h_n and c_n, for every parameter and the input."""
    out, (h, c) = result
    if isinstance(out, nn.utils.rnn.PackedSequence):
        out = pad_packed_sequence(out)[0]
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + (h ** 2).sum() + (c * 0.5).sum()
    names = [n for n, _ in module.named_parameters()] + ["input"]
    return dict(zip(names, torch.autograd.grad(loss, [*module.parameters(), x]), strict=True))


def assert_same(ours, theirs, ours_result, theirs_result, x):
    (o1, (h1, c1)), (o2, (h2, c2)) = ours_result, theirs_result
    o1, o2 = (pad_packed_sequence(o)[0] if isinstance(o, nn.utils.rnn.PackedSequence) else o for o in (o1, o2))
    torch.testing.assert_close(o1, o2)
    torch.testing.assert_close(h1, h2)
    torch.testing.assert_close(c1, c2)
    g1, g2 = grads(ours, ours_result, x), grads(theirs, theirs_result, x)
    assert g1.keys() == g2.keys()
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_dense_matches_torch(backend, bidirectional, batch_first):
    theirs, ours = twins(backend, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    x = torch.randn(5, 4, D, dtype=torch.float64)  # 5 steps, 4 rows
    if batch_first:
        x = x.transpose(0, 1).contiguous()
    x.requires_grad_()
    dirs = 2 if bidirectional else 1
    h0 = torch.randn(2 * dirs, 4, P, dtype=torch.float64)
    c0 = torch.randn(2 * dirs, 4, H, dtype=torch.float64)
    for hx in (None, (h0, c0)):
        r_ours, r_theirs = ours(x, hx), theirs(x, hx)
        assert r_ours[0].shape[-1] == P * dirs and r_ours[1][0].shape[-1] == P and r_ours[1][1].shape[-1] == H
        assert_same(ours, theirs, r_ours, r_theirs, x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_lengths_and_packed_match_torch_packed(backend, bidirectional, with_state):
    theirs, ours = twins(backend, num_layers=2, bidirectional=bidirectional)
    x = torch.randn(6, 4, D, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 1])  # unsorted: torch.nn permutes hx to its sorted order and back
    lead = 4 if bidirectional else 2
    hx = (torch.randn(lead, 4, P, dtype=torch.float64), torch.randn(lead, 4, H, dtype=torch.float64))
    hx = hx if with_state else None
    def packed():  # a fresh graph from x for each backward
        return pack_padded_sequence(x, lengths, enforce_sorted=False)

    assert_same(ours, theirs, ours(packed(), hx), theirs(packed(), hx), x)
    # lengths= on padded input: torch.nn's packed result, padded (its gradients too).
    assert_same(ours, theirs, ours(x, hx, lengths=lengths), theirs(packed(), hx), x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unbatched_matches_torch(backend):
    theirs, ours = twins(backend)
    x = torch.randn(5, D, dtype=torch.float64, requires_grad=True)
    hx = (torch.randn(1, P, dtype=torch.float64), torch.randn(1, H, dtype=torch.float64))
    assert_same(ours, theirs, ours(x, hx), theirs(x, hx), x)


def test_state_dict_keys_and_shapes_equal_torchs():
    theirs = nn.LSTM(D, H, 2, proj_size=P, bidirectional=True)
    ours = rnnkit.LSTM(D, H, 2, proj_size=P, bidirectional=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())  # and back
    assert ours.weight_hr_l1_reverse.shape == (P, H) and ours.weight_ih_l1.shape == (4 * H, 2 * P)
    assert ours.proj_size == theirs.proj_size == P


def test_fused_refuses_proj_size_and_auto_goes_elsewhere():
    layer = rnnkit.LSTM(D, H, proj_size=P, backend="fused")
    x = torch.randn(4, 2, D)
    with pytest.raises(ValueError, match="backend='fused' cannot run.*proj_size"):
        layer(x)
    for train in (True, False):
        layer.train(train)
        assert resolve_backend("auto", layer, x, None).name != "fused"
        assert resolve_backend("auto", layer, x, torch.tensor([4, 2])).name != "fused"


@pytest.mark.parametrize(("cls", "name"), [(rnnkit.RNN, "RNN"), (rnnkit.GRU, "GRU")])
def test_only_lstm_takes_proj_size(cls, name):
    for value in (2, 0):  # torch.nn refuses the argument itself, even 0
        with pytest.raises(ValueError, match=f"proj_size argument is only supported for LSTM, not {name}"):
            cls(D, H, proj_size=value)
    with pytest.raises(ValueError, match="proj_size is only supported for LSTM, not GRUCell"):
        rnnkit.Recurrent(rnnkit.GRUCell, D, H, proj_size=2)


@pytest.mark.parametrize(("value", "error", "pattern"), [
    (H, ValueError, f"proj_size must be smaller than hidden_size={H}, got {H}"),
    (-1, ValueError, "proj_size must be an integer >= 0, got -1"),
    (2.0, TypeError, "proj_size must be an integer >= 0, got 2.0"),
])
def test_proj_size_is_validated_like_torch(value, error, pattern):
    with pytest.raises(error):
        nn.LSTM(D, H, proj_size=value)
    with pytest.raises(error, match=pattern):
        rnnkit.LSTM(D, H, proj_size=value)


def test_proj_size_with_cell_extras_is_refused():
    with pytest.raises(ValueError, match="proj_size=2 cannot be combined with layer_norm"):
        rnnkit.LSTM(D, H, proj_size=2, zoneout=0.1)


def test_state_shapes_are_checked_against_proj_size():
    layer = rnnkit.LSTM(D, H, proj_size=P)
    x = torch.randn(4, 2, D)
    with pytest.raises(RuntimeError, match=rf"h_0 must have shape \(1, 2, {P}\), got \(1, 2, {H}\)"):
        layer(x, (torch.zeros(1, 2, H), torch.zeros(1, 2, H)))
    with pytest.raises(RuntimeError, match=rf"c_0 must have shape \(1, 2, {H}\), got \(1, 2, {P}\)"):
        layer(x, (torch.zeros(1, 2, P), torch.zeros(1, 2, P)))


def test_export_refuses_proj_size():
    with pytest.raises(ExportError, match="proj_size=2"):
        check_exportable(rnnkit.LSTM(D, H, proj_size=2))


def test_trace_records_projected_h():
    layer = rnnkit.LSTM(D, H, proj_size=P, bidirectional=True)
    x = torch.randn(5, 3, D)
    trace = layer.trace(x, lengths=[5, 2, 4])
    out, _ = layer(x, lengths=[5, 2, 4])
    assert trace[0, 0]["h"].shape == (3, 5, P) and trace[0, 0]["c"].shape == (3, 5, H)
    torch.testing.assert_close(trace.output, out)


def test_standalone_lstm_cell_with_projection():
    cell = rnnkit.LSTMCell(D, H, proj_size=P)
    h, c = cell(torch.randn(4, D))
    assert h.shape == (4, P) and c.shape == (4, H) and cell.weight_hr.shape == (P, H)
    assert repr(cell) == f"LSTMCell({D}, {H}, proj_size={P})"
