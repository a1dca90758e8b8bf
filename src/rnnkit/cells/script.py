"""``torch.jit.script`` of rnnkit's cells and layers: torch.nn's own module with the same parameters.

TorchScript cannot compile rnnkit's forward (back-end registry, auto-tuner, C++ extension), so
``torch.jit.script`` calls ``__prepare_scriptable__`` first and gets torch.nn's twin of the module: the same
``Parameter`` objects (shared, not copied: training the scripted module trains this one) in a ``torch.nn.LSTM``,
``GRU``, ``RNN`` or cell of the same configuration, which computes what rnnkit's ``native`` back end computes.
Each cell class names its twins (``Cell.torch_cell``, ``Cell.torch_layer``). What the twin cannot express (a custom
cell, cell extras, a parametrized weight) gets one clear error pointing to ``torch.compile`` and ``torch.export``,
which run rnnkit's own forward. The layers' twin: ``rnnkit.layers.script``.
"""

from __future__ import annotations

from torch import nn

HINT = "use torch.compile(module) or torch.export.export(module, args) instead"


class ScriptError(RuntimeError):
    """``torch.jit.script`` of a module that torch.nn's twin cannot stand in for."""


def refuse(module, why: str) -> None:
    raise ScriptError(f"torch.jit.script cannot compile rnnkit.{type(module).__name__} {why}; {HINT}")


def share(module, twin: nn.Module, names) -> nn.Module:
    """Give ``twin`` the module's own Parameter objects under the same names."""
    for name in names:
        param = module._parameters.get(name)
        if param is None:
            refuse(module, f"with a parametrized or replaced tensor {name!r}")
        setattr(twin, name, param)  # torch.nn.RNNBase.__setattr__ keeps its flat weights in step
    return twin.train(module.training)


def twin_class(cell_class: type, attribute: str) -> type[nn.Module] | None:
    """``torch_cell``/``torch_layer`` as the class itself declares it: a subclass may change the step, so it does
    not inherit its parent's twin."""
    return vars(cell_class).get(attribute)


def scriptable_cell(cell) -> nn.Module:
    torch_class = twin_class(type(cell), "torch_cell")
    if torch_class is None:
        refuse(cell, f"(a custom cell; torch.nn has no {type(cell).__name__})")
    if cell.rnnkit_options():
        refuse(cell, f"with the rnnkit-only options {sorted(cell.rnnkit_options())}")
    twin = torch_class(cell.input_size, cell.hidden_size, cell.bias, device="meta", **cell.torch_options())
    return share(cell, twin, cell.parameter_shapes())
