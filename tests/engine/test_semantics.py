"""What the extras mean (on the reference back end, the ground truth), auto's choice, determinism."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import rnnkit
from rnnkit.engine import resolve_backend

from .conftest import make_layer, run_all


def test_recurrent_dropout_mask_is_one_per_sequence():
    cell = rnnkit.RNNCell(3, 4, recurrent_dropout=0.5)
    masks = cell.sample_masks(6, 2, torch.zeros(1), training=True)
    assert set(masks) == {"recurrent_mask"} and masks["recurrent_mask"].shape == (2, 4)
    assert set(masks["recurrent_mask"].unique().tolist()) <= {0.0, 2.0}
    assert cell.sample_masks(6, 2, torch.zeros(1), training=False) == {}


def test_recurrent_dropout_by_hand():
    layer = make_layer("rnn_tanh", recurrent_dropout=0.5).train()
    x = torch.randn(4, 2, 4, dtype=torch.float64)
    torch.manual_seed(3)
    mask = torch.empty(2, 5, dtype=torch.float64).bernoulli_(0.5).div_(0.5)
    torch.manual_seed(3)
    layer.backend = "reference"
    out, _ = layer(x)
    h = torch.zeros(2, 5, dtype=torch.float64)
    for t in range(4):
        h = torch.tanh(x[t] @ layer.weight_ih_l0.T + layer.bias_ih_l0 + (h * mask) @ layer.weight_hh_l0.T
                       + layer.bias_hh_l0)
        torch.testing.assert_close(out[t], h)


def test_zoneout_eval_is_the_expectation():
    layer = make_layer("gru", zoneout=0.25).eval()
    plain = make_layer("gru").eval()
    x = torch.randn(3, 2, 4, dtype=torch.float64)
    layer.backend = plain.backend = "reference"
    out, _ = layer(x)
    h = torch.zeros(2, 5, dtype=torch.float64)
    for t in range(3):
        new = plain.cell_for(0, 0).step(x[t], (h,), plain.params_for(0, 0))[0]
        h = 0.75 * new + 0.25 * h
        torch.testing.assert_close(out[t], h)


def test_layer_norm_parameters_and_state_dict():
    layer = rnnkit.LSTM(3, 4, 2, layer_norm=True)
    keys = set(layer.state_dict())
    assert {"ln_ih_weight_l1", "ln_hh_bias_l0", "ln_c_weight_l0"} <= keys
    assert torch.equal(layer.ln_c_weight_l0, torch.ones(4)) and torch.equal(layer.ln_hh_bias_l1, torch.zeros(16))
    plain = rnnkit.GRU(3, 4, 2, bidirectional=True)
    assert set(plain.state_dict()) == set(torch.nn.GRU(3, 4, 2, bidirectional=True).state_dict())


@pytest.mark.parametrize("kwargs,message", [
    ({"zoneout": 1.0}, "zoneout must be"), ({"recurrent_dropout": -0.1}, "recurrent_dropout must be"),
    ({"layer_norm": "yes"}, "layer_norm must be a bool"),
])
def test_extras_arguments_are_validated(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        rnnkit.GRU(3, 4, **kwargs)
    with pytest.raises(ValueError, match="layer_norm is available for LSTM and GRU"):
        rnnkit.RNN(3, 4, layer_norm=True)


def test_native_declines_extras_and_auto_picks_fused():
    layer = rnnkit.LSTM(3, 4, zoneout=0.1)
    x = torch.randn(2, 2, 3)
    assert resolve_backend("auto", layer, x, None).name == "fused"
    with pytest.raises(ValueError, match="native"):
        layer.backend = "native"
        layer(x)


def test_auto_choice():
    x_small, x_big = torch.randn(5, 1, 3), torch.randn(5, 32, 3)
    for cls in (rnnkit.RNN, rnnkit.GRU):
        assert resolve_backend("auto", cls(3, 4), x_big, None).name == "fused"
    lstm = rnnkit.LSTM(3, 4)
    assert resolve_backend("auto", lstm, x_small, None).name == "fused"  # under 8 rows: the unit-split forward
    lstm.eval()
    assert resolve_backend("auto", lstm, torch.randn(5, 8, 3), None).name == "native"  # oneDNN inference
    assert resolve_backend("auto", lstm, x_big, None).name == "native"
    assert resolve_backend("auto", lstm, x_big, torch.full((32,), 3)).name == "native"  # rows hold through pads
    lstm.train()
    assert resolve_backend("auto", lstm, x_big, None).name == "fused"  # training: the fused BPTT is faster
    assert resolve_backend("auto", lstm, x_big, torch.full((32,), 3)).name == "fused"
    assert resolve_backend("fused", lstm, x_big, None).name == "fused"  # an explicit choice is honoured


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_same_seed_bit_identical(backend):
    layer = make_layer("lstm", layers=2, bidirectional=True, recurrent_dropout=0.2, zoneout=0.1).train()
    layer.dropout = 0.3
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    a, b = run_all(layer, backend, x, None, [5, 2, 4]), run_all(layer, backend, x, None, [5, 2, 4])
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_build_failure_is_loud_and_declines(tmp_path):
    code = ("import warnings, torch, rnnkit\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    layer = rnnkit.GRU(3, 4)\n"
            "    out, _ = layer(torch.randn(2, 1, 3))\n"
            "from rnnkit.engine import resolve_backend\n"
            "print(resolve_backend('auto', layer, torch.randn(2, 1, 3), None).name)\n"
            "print(any('fused back end unavailable' in str(x.message) for x in w))\n")
    env = {**os.environ, "CXX": "/bin/false", "RNNKIT_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["native", "True"]
