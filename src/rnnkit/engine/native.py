"""The native back end: torch's own kernels (oneDNN on CPU, cuDNN on GPU).

It runs the layer's parameters through a torch.nn module built on the ``meta``
device (it holds no memory), with ``torch.func.functional_call``: no weight is
copied and gradients land on the layer's own parameters. Variable lengths go
through a PackedSequence, which torch handles exactly (each sequence's own last
step, the reverse direction starting there).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.engine.registry import register_backend


def _template(layer) -> nn.Module:
    """A torch.nn twin of ``layer`` on the meta device, cached per configuration."""
    key = (layer.cell_type, layer.input_size, layer.hidden_size, layer.num_layers, layer.bias,
           layer.dropout, layer.bidirectional, getattr(layer.cell_for(0, 0), "nonlinearity", None))
    cached = layer.__dict__.get("_native_template")
    if cached is not None and cached[0] == key:
        return cached[1]
    common = dict(input_size=layer.input_size, hidden_size=layer.hidden_size, num_layers=layer.num_layers,
                  bias=layer.bias, dropout=layer.dropout, bidirectional=layer.bidirectional, device="meta")
    if layer.cell_type is LSTMCell:
        module = nn.LSTM(**common)
    elif layer.cell_type is GRUCell:
        module = nn.GRU(**common)
    else:
        module = nn.RNN(nonlinearity=layer.cell_for(0, 0).nonlinearity, **common)
    layer.__dict__["_native_template"] = (key, module)
    return module


class NativeBackend:
    name = "native"

    def unsupported(self, layer, x, lengths):
        if layer.cell_type not in (RNNCell, LSTMCell, GRUCell):
            return f"torch has no native kernel for {layer.cell_type.__name__}"
        extra = sorted(set(layer.cell_options) - {"nonlinearity"})
        if extra:
            return f"torch's kernels have no cell options {extra}"
        return None

    def run(self, layer, x: Tensor, hx, lengths):
        module = _template(layer)
        module.train(layer.training)
        params = dict(layer.named_parameters(recurse=False))
        steps = x.shape[0]
        if lengths is not None and bool((lengths == steps).all()):
            lengths = None
        inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
        state = None if hx is None else (hx[0] if len(hx) == 1 else tuple(hx))
        out, final = functional_call(module, params, (inp, state))
        if lengths is not None:
            out, _ = pad_packed_sequence(out, total_length=steps)
        finals = (final,) if isinstance(final, Tensor) else tuple(final)
        return out, finals


NATIVE = register_backend(NativeBackend(), priority=10)
