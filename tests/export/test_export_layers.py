"""Exported recurrent layers against torch.nn in float32 on the core equivalence grid (tests/layers/test_equivalence).

Every configuration of that grid is exported: cells (tanh and relu RNN, LSTM, GRU), 1-3 layers, one or two
directions, batch_first, with and without biases, equal lengths, lengths and packed sequences (the ONNX graph
takes the lengths a PackedSequence carries), with and without an initial state.
"""

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.export import ExportError, layer_graph
from rnnkit.export.runtime import make_session
from tests.helpers import KINDS, as_tuple
from tests.layers.test_equivalence import GRID, B, D, H, T, _ids

TOL = 1e-5  # the float32 parity target


def _torch_nn(kind, rnnkit_layer, **kwargs):
    theirs = KINDS[kind][1](**kwargs)
    theirs.load_state_dict(rnnkit_layer.state_dict())
    return theirs.eval()


@pytest.mark.parametrize("case", GRID, ids=_ids)
def test_layer_export_matches_torch_nn(case):
    kind, layers, bidir, batch_first, bias, mode, with_hx = case
    kwargs = dict(input_size=D, hidden_size=H, num_layers=layers, bias=bias, batch_first=batch_first,
                  bidirectional=bidir)
    ours = KINDS[kind][0](**kwargs).eval()
    theirs = _torch_nn(kind, ours, **kwargs)
    x = torch.randn((B, T, D) if batch_first else (T, B, D))
    lengths = torch.tensor([T, 2, 4, 1]) if mode != "equal" else torch.full((B,), T)
    states = 2 if kind == "lstm" else 1
    hx = tuple(torch.randn(layers * (2 if bidir else 1), B, H) for _ in range(states)) if with_hx else None
    with torch.no_grad():
        hx_arg = None if hx is None else (hx if states == 2 else hx[0])
        if mode == "equal":
            out, final = theirs(x, hx_arg)
        else:
            packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
            out, final = theirs(packed, hx_arg)
            out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    session = make_session(layer_graph(ours, with_lengths=mode != "equal", with_state=with_hx).SerializeToString())
    feeds = {"input": x.numpy()}
    if mode != "equal":
        feeds["lengths"] = lengths.numpy()
    if with_hx:
        feeds.update(zip(("h0", "c0"), (h.numpy() for h in hx), strict=False))
    got = session.run(None, feeds)
    expected = [out, *as_tuple(final)]
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=TOL, rtol=0)


def test_outputs_past_each_length_are_zero():
    layer = rnnkit.GRU(D, H, num_layers=2, bidirectional=True).eval()
    session = make_session(layer_graph(layer).SerializeToString())
    lengths = np.array([1, T, 3, 2])
    out, _ = session.run(None, {"input": np.random.randn(T, B, D).astype(np.float32), "lengths": lengths})
    for b, n in enumerate(lengths):
        assert np.abs(out[n:, b]).sum() == 0 and np.abs(out[:n, b]).sum() > 0


def test_dynamic_batch_and_length():
    layer = rnnkit.LSTM(D, H, num_layers=2, bidirectional=True).eval()
    session = make_session(layer_graph(layer).SerializeToString())
    for steps, batch in ((1, 1), (9, 3), (17, 6)):
        x, lengths = torch.randn(steps, batch, D), torch.randint(1, steps + 1, (batch,))
        with torch.no_grad():
            out, (h, c) = layer(x, lengths=lengths)
        got = session.run(None, {"input": x.numpy(), "lengths": lengths.numpy()})
        for a, b in zip(got, (out, h, c), strict=True):
            np.testing.assert_allclose(a, b.numpy(), atol=TOL, rtol=0)


def test_recurrent_dropout_exports_as_the_plain_cell():
    # Recurrent dropout is the identity at inference: the eval-mode layer and the plain export agree.
    layer = rnnkit.LSTM(D, H, recurrent_dropout=0.3).eval()
    x = torch.randn(T, B, D)
    with torch.no_grad():
        out, _ = layer(x)
    got = make_session(layer_graph(layer, with_lengths=False).SerializeToString()).run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got[0], out.numpy(), atol=TOL, rtol=0)


EXTRAS = [dict(layer_norm=True), dict(zoneout=0.2), dict(layer_norm=True, zoneout=0.3, recurrent_dropout=0.2)]
# layer_norm is an LSTM/GRU option: simple RNNs get the zoneout case only.
EXTRA_CASES = [(kind, extras) for kind in KINDS for extras in EXTRAS
               if not (kind.startswith("rnn") and extras.get("layer_norm"))]


@pytest.mark.parametrize("kind, extras", EXTRA_CASES, ids=lambda v: v if isinstance(v, str) else "+".join(v))
@pytest.mark.parametrize("bidir", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["equal", "lengths"])
def test_cell_extras_export_as_a_scan_matching_the_layer(kind, extras, bidir, with_lengths):
    """Layer norm and zoneout have no ONNX operator: the Scan graph must match rnnkit's eval-mode layer."""
    layer = KINDS[kind][0](input_size=D, hidden_size=H, num_layers=2, bidirectional=bidir, batch_first=True,
                           **extras)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):  # away from γ = 1, β = 0, so a misplaced normalisation shows
                p.uniform_(0.5, 1.5) if "weight" in name else p.uniform_(-0.5, 0.5)
    layer.eval()
    x, lengths = torch.randn(B, T, D), torch.tensor([T, 2, 4, 1])
    hx = tuple(torch.randn(2 * (2 if bidir else 1), B, H) for _ in range(2 if kind == "lstm" else 1))
    with torch.no_grad():
        out, final = layer(x, hx if kind == "lstm" else hx[0], lengths=lengths if with_lengths else None)
    graph = layer_graph(layer, with_lengths=with_lengths, with_state=True)
    assert any(node.op_type == "Scan" for node in graph.graph.node)
    feeds = {"input": x.numpy(), **dict(zip(("h0", "c0"), (h.numpy() for h in hx), strict=False))}
    if with_lengths:
        feeds["lengths"] = lengths.numpy()
    got = make_session(graph.SerializeToString()).run(None, feeds)
    for a, b in zip(got, [out, *as_tuple(final)], strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=TOL, rtol=0)


def test_custom_cell_is_refused():
    class MyCell(rnnkit.GRUCell):
        pass

    with pytest.raises(ExportError, match="custom cell MyCell"):
        layer_graph(rnnkit.Recurrent(MyCell, D, H))
