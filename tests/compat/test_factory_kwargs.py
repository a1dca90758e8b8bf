"""``device=`` and ``dtype=`` factory arguments, by keyword and in torch.nn's positions, on layers and cells."""

import pytest
import torch
from torch import nn

import rnnkit

D, H = 3, 4
PAIRS = [(nn.RNN, rnnkit.RNN), (nn.LSTM, rnnkit.LSTM), (nn.GRU, rnnkit.GRU),
         (nn.RNNCell, rnnkit.RNNCell), (nn.LSTMCell, rnnkit.LSTMCell), (nn.GRUCell, rnnkit.GRUCell)]
# Every positional argument before device and dtype, at its default (torch.nn's order).
POSITIONAL = {nn.RNN: (D, H, 1, "tanh", True, False, 0.0, False), nn.LSTM: (D, H, 1, True, False, 0.0, False, 0),
              nn.GRU: (D, H, 1, True, False, 0.0, False), nn.RNNCell: (D, H, True, "tanh"),
              nn.LSTMCell: (D, H, True), nn.GRUCell: (D, H, True)}


def _kinds(module):
    return {name: (p.dtype, p.device.type) for name, p in module.named_parameters()}


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=lambda c: c.__module__.split(".")[0] + "." + c.__name__)
@pytest.mark.parametrize("factory", [{"dtype": torch.float64}, {"device": "meta"},
                                     {"device": "cpu", "dtype": torch.float16}])
def test_factory_kwargs_place_parameters_like_torch(theirs, ours, factory):
    expected = _kinds(theirs(D, H, **factory))
    assert _kinds(ours(D, H, **factory)) == expected
    # In the documented positions (torch.nn.RNN and GRU themselves read a 9th positional argument as
    # RNNBase's proj_size and fail; rnnkit follows their documented signature).
    positional = POSITIONAL[theirs] + (factory.get("device"), factory.get("dtype"))
    assert _kinds(ours(*positional)) == expected


@pytest.mark.parametrize(("theirs", "ours"), PAIRS[:3], ids=lambda c: c.__name__)
@pytest.mark.parametrize("backend", ["reference", "native", "fused", "auto"])
def test_float64_layer_runs_and_matches_torch(theirs, ours, backend):
    reference = theirs(D, H, 2, dtype=torch.float64)
    layer = ours(D, H, 2, dtype=torch.float64, backend=backend)
    layer.load_state_dict(reference.state_dict())
    x = torch.randn(5, 2, D, dtype=torch.float64)
    out, _ = layer(x)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, reference(x)[0])


@pytest.mark.parametrize(("theirs", "ours"), PAIRS[3:], ids=lambda c: c.__name__)
def test_float64_cell_runs_and_matches_torch(theirs, ours):
    reference, cell = theirs(D, H, dtype=torch.float64), ours(D, H, dtype=torch.float64)
    cell.load_state_dict(reference.state_dict())
    x = torch.randn(2, D, dtype=torch.float64)
    torch.testing.assert_close(cell(x), reference(x))
