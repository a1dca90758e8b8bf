"""rnnkit layers against torch.nn in float64: outputs, final states and every gradient, on every back end."""

import itertools

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit
from tests.helpers import KINDS, as_tuple, make_pair

TOL = 1e-10
T, B, D, H = 5, 4, 3, 4

GRID = list(itertools.product(
    KINDS, [1, 2, 3], [False, True], [False, True], [True, False], ["equal", "lengths", "packed"], [False, True],
))


def _ids(case):
    kind, layers, bidir, batch_first, bias, mode, with_hx = case
    return f"{kind}-L{layers}-{'bi' if bidir else 'uni'}-{'bf' if batch_first else 'tf'}-" \
           f"{'bias' if bias else 'nobias'}-{mode}-{'hx' if with_hx else 'nohx'}"


def _run(module, x, hx, lengths, mode, batch_first, ours):
    """Call a layer the way the case says; return padded output (batch order of x) and states."""
    if mode == "equal":
        out, state = module(x, hx)
    elif mode == "lengths" and ours:
        out, state = module(x, hx, lengths=lengths)
    else:  # torch.nn always gets a PackedSequence when lengths vary; so do we in "packed" mode
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        out, state = module(packed, hx)
        assert isinstance(out, PackedSequence)
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    return out, as_tuple(state)


@pytest.mark.parametrize("backend", rnnkit.available_backends())
@pytest.mark.parametrize("case", GRID, ids=_ids)
def test_matches_torch_nn(case, backend):
    kind, layers, bidir, batch_first, bias, mode, with_hx = case
    ours, theirs = make_pair(kind, backend, input_size=D, hidden_size=H, num_layers=layers, bias=bias,
                             batch_first=batch_first, bidirectional=bidir)
    dirs = 2 if bidir else 1
    shape = (B, T, D) if batch_first else (T, B, D)
    x = torch.randn(shape, dtype=torch.float64)
    lengths = torch.tensor([T, 2, 4, 1]) if mode != "equal" else None
    n_states = 2 if kind == "lstm" else 1
    hx = tuple(torch.randn(layers * dirs, B, H, dtype=torch.float64) for _ in range(n_states)) if with_hx else None

    results = []
    for module, is_ours in ((ours, True), (theirs, False)):
        x_i = x.clone().requires_grad_(True)
        hx_i = None if hx is None else tuple(h.clone().requires_grad_(True) for h in hx)
        hx_arg = None if hx_i is None else (hx_i if n_states == 2 else hx_i[0])
        out, states = _run(module, x_i, hx_arg, lengths, mode, batch_first, is_ours)
        # A fixed random weighting of every output and state, so every gradient path is exercised.
        g = torch.Generator().manual_seed(1)
        loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
        for s in states:
            loss = loss + (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum()
        loss.backward()
        results.append((out.detach(), [s.detach() for s in states], x_i.grad,
                        None if hx_i is None else [h.grad for h in hx_i],
                        {n: p.grad for n, p in module.named_parameters()}))

    (o1, s1, gx1, gh1, gp1), (o2, s2, gx2, gh2, gp2) = results
    torch.testing.assert_close(o1, o2, atol=TOL, rtol=0)
    for a, b in zip(s1, s2, strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)
    torch.testing.assert_close(gx1, gx2, atol=TOL, rtol=0)
    if gh1 is not None:
        for a, b in zip(gh1, gh2, strict=True):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0)
    assert gp1.keys() == gp2.keys()
    for name in gp1:
        torch.testing.assert_close(gp1[name], gp2[name], atol=TOL, rtol=0, msg=name)


@pytest.mark.parametrize("kind", list(KINDS))
def test_unbatched_input_matches_torch_nn(kind):
    ours, theirs = make_pair(kind, input_size=D, hidden_size=H, num_layers=2, bidirectional=True)
    x = torch.randn(T, D, dtype=torch.float64)
    o1, s1 = ours(x)
    o2, s2 = theirs(x)
    torch.testing.assert_close(o1, o2, atol=TOL, rtol=0)
    for a, b in zip(as_tuple(s1), as_tuple(s2), strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_outputs_past_length_are_zero(kind):
    layer = KINDS[kind][0](input_size=D, hidden_size=H, num_layers=2, bidirectional=True)
    out, _ = layer(torch.randn(T, B, D), lengths=torch.tensor([1, T, 3, 2]))
    for b, n in enumerate([1, T, 3, 2]):
        assert out[n:, b].abs().sum() == 0
        assert out[:n, b].abs().sum() > 0
