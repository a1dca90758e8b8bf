"""The native back end: torch's own kernels (oneDNN on CPU, cuDNN on GPU).

It runs the layer's parameters through a torch.nn module built on the ``meta``
device (it holds no memory), with ``torch.func.functional_call``: no weight is
copied and gradients land on the layer's own parameters.

Variable lengths, exactly and without losing the fast padded kernels where possible:

* GRU and simple RNN (one state vector): each layer and direction runs over the
  padded batch; padding sits after each sequence's last step, so it cannot reach
  a valid output. Outputs past each length are zeroed and ``h_n`` is read at each
  sequence's own last step (never at T: with a bias, pad steps do move the state).
  The reverse direction gets its input reversed within each length (see ``stack``),
  so it starts at each sequence's own last token.
* LSTM: ``c_n`` at a sequence's last step is not among a padded run's outputs, so
  variable lengths go through a PackedSequence, which torch handles exactly.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.engine.registry import register_backend
from rnnkit.engine.stack import run_stack
from rnnkit.lengths import last_valid, step_mask

_MODULES = {LSTMCell: nn.LSTM, GRUCell: nn.GRU, RNNCell: nn.RNN}


def _template(layer, num_layers: int, bidirectional: bool, input_size: int) -> nn.Module:
    """A torch.nn twin on the meta device (it holds no memory), cached on the layer per shape."""
    nonlinearity = getattr(layer.cell_for(0, 0), "nonlinearity", None)
    key = (layer.cell_type, input_size, layer.hidden_size, num_layers, layer.bias, layer.dropout, bidirectional,
           nonlinearity)
    cache = layer.__dict__.setdefault("_native_templates", {})
    if key not in cache:
        kw = dict(input_size=input_size, hidden_size=layer.hidden_size, num_layers=num_layers, bias=layer.bias,
                  dropout=layer.dropout if num_layers > 1 else 0.0, bidirectional=bidirectional, device="meta")
        if layer.cell_type is RNNCell:
            kw["nonlinearity"] = nonlinearity
        cache[key] = _MODULES[layer.cell_type](**kw)
    return cache[key]


def _padded_direction(layer, k: int, d: int, x: Tensor, h0, lengths: Tensor, record=None):
    """One layer, one direction of a single-state cell over padded (T, B, F) input; see the module docstring."""
    module = _template(layer, 1, False, x.shape[2])
    module.train(layer.training)
    params = {f"{name}_l0": tensor for name, tensor in layer.params_for(k, d).items()}
    out, _ = functional_call(module, params, (x, None if h0 is None else h0[0].unsqueeze(0)))
    out = out.masked_fill(~step_mask(lengths, x.shape[0], x.device), 0.0)
    return out, (last_valid(out, lengths),)


class NativeBackend:
    name = "native"

    def unsupported(self, layer, x, lengths):
        if layer.cell_type not in _MODULES:
            return f"torch has no native kernel for {layer.cell_type.__name__}"
        extra = sorted(set(layer.cell_options) - {"nonlinearity"})
        if extra:
            return f"torch's kernels have no cell options {extra}"
        return None

    def run(self, layer, x: Tensor, hx, lengths):
        steps = x.shape[0]
        if lengths is not None and bool((lengths == steps).all()):
            lengths = None
        if lengths is not None and layer.cell_type.state_count == 1:
            return run_stack(layer, x, hx, lengths, _padded_direction)
        module = _template(layer, layer.num_layers, layer.bidirectional, layer.input_size)
        module.train(layer.training)
        params = dict(layer.named_parameters(recurse=False))
        inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
        state = None if hx is None else (hx[0] if len(hx) == 1 else tuple(hx))
        out, final = functional_call(module, params, (inp, state))
        if lengths is not None:
            out, _ = pad_packed_sequence(out, total_length=steps)
        finals = (final,) if isinstance(final, Tensor) else tuple(final)
        return out, finals


NATIVE = register_backend(NativeBackend(), priority=10)
