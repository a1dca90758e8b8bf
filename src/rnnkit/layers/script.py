"""``torch.jit.script`` of rnnkit's layers: torch.nn's own layer (the cell class's ``torch_layer``) holding the same
parameters; the why and the cells' twin are in ``rnnkit.cells.script``."""

from __future__ import annotations

from torch import nn

from rnnkit.cells.script import ScriptError, refuse, share, twin_class

__all__ = ["ScriptError", "scriptable_layer"]

_TORCH_OPTIONS = {"nonlinearity", "proj_size"}  # cell options torch.nn's layers have too


def scriptable_layer(layer) -> nn.Module:
    torch_class = twin_class(layer.cell_type, "torch_layer")
    if torch_class is None:
        refuse(layer, f"of the custom cell {layer.cell_type.__name__}")
    extra = sorted(set(layer.cell_options) - _TORCH_OPTIONS)
    if extra:
        refuse(layer, f"with the rnnkit-only options {extra}")
    options = {k: v for k, v in layer.cell_options.items() if k in _TORCH_OPTIONS}
    twin = torch_class(layer.input_size, layer.hidden_size, layer.num_layers, bias=layer.bias,
                       batch_first=layer.batch_first, dropout=layer.dropout, bidirectional=layer.bidirectional,
                       device="meta", **options)
    return share(layer, twin, layer._flat_weights_names)
