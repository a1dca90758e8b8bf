"""The native back end's segment plan, and LSTM rows holding their state through pad steps, against the reference."""

from __future__ import annotations

import pytest
import torch

from rnnkit.engine import native
from rnnkit.engine.native import plan

from .conftest import assert_same, make_layer, run_all


def test_plan_without_hold_ends_at_every_distinct_length():
    assert plan([9, 7, 7, 3, 1], hold=False) == [1, 3, 7, 9]


def test_plan_with_costly_calls_is_one_padded_segment(monkeypatch):
    monkeypatch.setattr(native, "CALL_ROW_STEPS", 10**9)
    assert plan([9, 7, 7, 3, 1], hold=True) == [9]


def test_plan_with_free_calls_ends_at_every_distinct_length(monkeypatch):
    # Each split stops rows that have ended, so with no cost per call or step every split pays.
    monkeypatch.setattr(native, "CALL_ROW_STEPS", 0)
    monkeypatch.setattr(native, "STEP_ROWS", 0)
    assert plan([9, 7, 7, 3, 1], hold=True) == [1, 3, 7, 9]


def test_plan_merges_close_lengths_and_splits_far_ones(monkeypatch):
    monkeypatch.setattr(native, "CALL_ROW_STEPS", 20)
    monkeypatch.setattr(native, "STEP_ROWS", 2)
    # Four long rows (99-100) and four short ones (10-11): one cut after the short ones, none among near-equals.
    assert plan([100, 100, 99, 99, 11, 11, 10, 10], hold=True) == [11, 100]


def test_plan_caps_the_points_it_searches(monkeypatch):
    monkeypatch.setattr(native, "PLAN_POINTS", 5)
    monkeypatch.setattr(native, "CALL_ROW_STEPS", 0)
    monkeypatch.setattr(native, "STEP_ROWS", 0)
    ends = plan(list(range(100, 0, -1)), hold=True)
    assert len(ends) == 5 and ends[-1] == 100 and ends == sorted(ends)


@pytest.fixture(params=["one_segment", "two_segments"])
def held(request, monkeypatch):
    """Plans that make some rows hold through pad steps (``plan`` would end a segment at every length)."""
    if request.param == "one_segment":
        monkeypatch.setattr(native, "CALL_ROW_STEPS", 10**9)
    else:
        monkeypatch.setattr(native, "CALL_ROW_STEPS", 3)
        monkeypatch.setattr(native, "STEP_ROWS", 0)
    return request.param


@pytest.mark.parametrize("layers,bidirectional,with_hx,bias", [(1, False, False, True), (2, True, True, True),
                                                               (3, True, False, False), (2, False, True, True)])
def test_held_lstm_equals_reference_in_float64(held, layers, bidirectional, with_hx, bias):
    layer = make_layer("lstm", layers=layers, bidirectional=bidirectional, bias=bias)
    torch.manual_seed(3)
    x = torch.randn(9, 5, 4, dtype=torch.float64)
    lengths = [9, 2, 5, 1, 8]
    hx = None
    if with_hx:
        hx = tuple(torch.randn(layers * (2 if bidirectional else 1), 5, 5, dtype=torch.float64) for _ in range(2))
    assert len(plan(sorted(lengths, reverse=True), hold=True)) < len(set(lengths))  # rows really hold
    assert_same(run_all(layer, "native", x, hx, lengths), run_all(layer, "reference", x, hx, lengths))


def test_held_lstm_ignores_what_the_padding_holds(held):
    layer = make_layer("lstm", layers=2, bidirectional=True).float()
    x = torch.randn(9, 4, 4)
    lengths = torch.tensor([9, 3, 6, 1])
    noisy = x.clone()
    for b, n in enumerate(lengths.tolist()):
        noisy[n:, b] = 1e6 * torch.randn(9 - n, 4)
    noisy[5:, 1] = float("nan")
    layer.backend = "native"
    with torch.no_grad():
        out, (h, c) = layer(x, lengths=lengths)
        out_noisy, (h_noisy, c_noisy) = layer(noisy, lengths=lengths)
        layer.backend = "reference"
        expected, (h_ref, c_ref) = layer(x, lengths=lengths)
    assert torch.equal(out, out_noisy) and torch.equal(h, h_noisy) and torch.equal(c, c_noisy)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(c, c_ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-4)


def test_held_state_survives_large_recurrent_weights(held):
    # Pre-activations of hundreds: the flag's weight must still dominate them.
    layer = make_layer("lstm", layers=1)
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(200.0)
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    lengths = [7, 2, 4]
    assert_same(run_all(layer, "native", x, None, lengths), run_all(layer, "reference", x, None, lengths))


def test_weights_beyond_the_dtype_fall_back_to_exact_segments(monkeypatch):
    # bound + 10⁴ must stay far inside the dtype's range; where it would not, rows end segments instead.
    monkeypatch.setattr(native, "CALL_ROW_STEPS", 10**9)
    layer = make_layer("lstm", layers=1)
    with torch.no_grad():
        layer.weight_hh_l0.fill_(1e307)
    calls = []
    real = native._call
    monkeypatch.setattr(native, "_call", lambda *a: calls.append(a[1].shape) or real(*a))
    layer.backend = "native"
    with torch.no_grad():
        layer(torch.randn(6, 3, 4, dtype=torch.float64), lengths=[6, 2, 4])
    assert [shape[0] for shape in calls] == [2, 2, 2]  # segments end at 2, 4 and 6: no row held
