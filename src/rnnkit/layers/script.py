"""``torch.jit.script`` of rnnkit's layers and cells: torch.nn's own module with the same parameters.

TorchScript cannot compile rnnkit's forward (back-end registry, auto-tuner, C++ extension), so
``torch.jit.script`` calls ``__prepare_scriptable__`` first and gets torch.nn's twin of the module: the same
``Parameter`` objects (shared, not copied: training the scripted module trains this one) in a ``torch.nn.LSTM``,
``GRU``, ``RNN`` or cell of the same configuration, which computes what rnnkit's ``native`` back end computes.
What the twin cannot express (a custom cell, cell extras, a parametrized weight) gets one clear error pointing
to ``torch.compile`` and ``torch.export``, which run rnnkit's own forward.
"""

from __future__ import annotations

from torch import nn

from rnnkit.cells import GRUCell, LSTMCell, RNNCell

HINT = "use torch.compile(module) or torch.export.export(module, args) instead"
_LAYERS = {LSTMCell: nn.LSTM, GRUCell: nn.GRU, RNNCell: nn.RNN}
_CELLS = {LSTMCell: nn.LSTMCell, GRUCell: nn.GRUCell, RNNCell: nn.RNNCell}
_TORCH_OPTIONS = {"nonlinearity", "proj_size"}  # cell options torch.nn's modules have too


class ScriptError(RuntimeError):
    """``torch.jit.script`` of a module that torch.nn's twin cannot stand in for."""


def _refuse(module, why: str) -> None:
    raise ScriptError(f"torch.jit.script cannot compile rnnkit.{type(module).__name__} {why}; {HINT}")


def _share(module, twin: nn.Module, names) -> nn.Module:
    """Give ``twin`` the module's own Parameter objects under the same names."""
    for name in names:
        param = module._parameters.get(name)
        if param is None:
            _refuse(module, f"with a parametrized or replaced tensor {name!r}")
        setattr(twin, name, param)  # torch.nn.RNNBase.__setattr__ keeps its flat weights in step
    return twin.train(module.training)


def scriptable_layer(layer) -> nn.Module:
    torch_class = _LAYERS.get(layer.cell_type)
    if torch_class is None:
        _refuse(layer, f"of the custom cell {layer.cell_type.__name__}")
    extra = sorted(set(layer.cell_options) - _TORCH_OPTIONS)
    if extra:
        _refuse(layer, f"with the rnnkit-only options {extra}")
    options = {k: v for k, v in layer.cell_options.items() if k in _TORCH_OPTIONS}
    twin = torch_class(layer.input_size, layer.hidden_size, layer.num_layers, bias=layer.bias,
                       batch_first=layer.batch_first, dropout=layer.dropout, bidirectional=layer.bidirectional,
                       device="meta", **options)
    return _share(layer, twin, layer._flat_weights_names)


def scriptable_cell(cell) -> nn.Module:
    torch_class = _CELLS.get(type(cell))
    if torch_class is None:
        _refuse(cell, f"(a custom cell; torch.nn has no {type(cell).__name__})")
    if cell.rnnkit_options():
        _refuse(cell, f"with the rnnkit-only options {sorted(cell.rnnkit_options())}")
    options = {"nonlinearity": cell.nonlinearity} if type(cell) is RNNCell else {}
    twin = torch_class(cell.input_size, cell.hidden_size, cell.bias, device="meta", **options)
    return _share(cell, twin, cell.parameter_shapes())
