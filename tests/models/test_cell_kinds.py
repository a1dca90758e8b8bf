"""The one table from a config's cell name to a layer: every name builds, and what it builds is that cell."""

from __future__ import annotations

import pytest
import torch

from rnnkit.cells import BUILT_IN_CELLS
from rnnkit.models.cell_kinds import KINDS, build_layer, check_options
from rnnkit.models.choices import CELL_HELP, CELLS
from rnnkit.models.config import LanguageModelConfig


def test_the_table_holds_the_names_the_configs_accept_and_every_built_in_cell():
    assert list(KINDS) == list(CELLS)
    assert {kind.cell for kind in KINDS.values()} == set(BUILT_IN_CELLS)
    for name in CELLS:
        assert name in CELL_HELP


@pytest.mark.parametrize("name", list(CELLS))
def test_each_name_builds_a_layer_of_its_cell_that_runs(name):
    layer = build_layer(name, "plain", input_size=3, hidden_size=4, num_layers=2, batch_first=True,
                        bidirectional=True)
    assert layer.cell_type is KINDS[name].cell
    out, _ = layer(torch.randn(2, 5, 3), lengths=torch.tensor([5, 2]))
    assert out.shape == (2, 5, 8)
    assert out[1, 2:].abs().max() == 0  # past its length a row's outputs are zero


def test_the_two_simple_rnn_names_differ_in_their_nonlinearity_only():
    tanh = build_layer("rnn", "plain", input_size=3, hidden_size=4)
    relu = build_layer("rnn_relu", "plain", input_size=3, hidden_size=4)
    assert (tanh.nonlinearity, relu.nonlinearity) == ("tanh", "relu")
    relu.load_state_dict(tanh.state_dict())
    x = torch.randn(6, 2, 3)
    assert not torch.equal(tanh(x)[0], relu(x)[0])


def test_a_form_reaches_the_minimal_layers_and_is_refused_by_the_others():
    assert build_layer("mingru", "log", input_size=3, hidden_size=4).form == "log"
    with pytest.raises(ValueError, match=r"cell_form='log' applies to mingru and minlstm only, got cell='lstm'"):
        check_options("lstm", "auto", "log")
    with pytest.raises(ValueError, match=r"cell_form must be one of"):
        check_options("mingru", "auto", "logs")


@pytest.mark.parametrize(("cell", "backend", "message"), [
    ("mingru", "native", r"backend must be one of \['auto', 'fused', 'log-scan', 'reference', 'scan'\], got 'native'"),
    ("minlstm", "log-scan", r"backend 'log-scan' needs form='log'"),
    ("gru", "log-scan", r"log-scan"),
])
def test_a_back_end_the_cell_cannot_take_is_refused_when_the_config_is_made(cell, backend, message):
    with pytest.raises(ValueError, match=message):
        LanguageModelConfig(cell=cell, backend=backend)
