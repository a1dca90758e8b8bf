"""The torch.nn API surface of rnnkit's layers and cells: signatures, attributes, repr, module tree, dropout's
range, zero-size cells and ``torch.jit.script``, each checked against torch.nn itself."""

import copy
import inspect
import typing
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import rnnkit

D, H = 3, 5
LAYERS = {"RNN": (nn.RNN, rnnkit.RNN), "LSTM": (nn.LSTM, rnnkit.LSTM), "GRU": (nn.GRU, rnnkit.GRU)}
CELLS = {"RNNCell": (nn.RNNCell, rnnkit.RNNCell), "LSTMCell": (nn.LSTMCell, rnnkit.LSTMCell),
         "GRUCell": (nn.GRUCell, rnnkit.GRUCell)}
BACKENDS = ["reference", "native", "fused", "auto"]
RNNKIT_ONLY = {"backend", "own_parameters", "proj_size", "layer_norm", "recurrent_dropout", "zoneout"}


def _documented_signature(cls) -> inspect.Signature:
    """torch.nn's signature: the typed overload of the layers' ``__init__(*args, **kwargs)``, else the real one."""
    overloads = [o for o in typing.get_overloads(cls.__init__) if "input_size" in inspect.signature(o).parameters]
    return inspect.signature(overloads[0] if overloads else cls.__init__)


def _ordered(sig: inspect.Signature) -> list[tuple[str, object]]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
    return [(p.name, p.default) for p in sig.parameters.values() if p.kind in kinds and p.name != "self"]


@pytest.mark.parametrize("kind", [*LAYERS, *CELLS])
def test_positional_arguments_are_torchs(kind):
    theirs, ours = {**LAYERS, **CELLS}[kind]
    assert _ordered(inspect.signature(ours.__init__)) == _ordered(_documented_signature(theirs))
    options = inspect.signature(ours.__init__).parameters.values()
    keyword_only = {p.name for p in options if p.kind == inspect.Parameter.KEYWORD_ONLY}
    assert keyword_only and keyword_only <= RNNKIT_ONLY


def test_positional_call_like_torch():
    cell = rnnkit.RNNCell(10, 20, True, "relu")
    assert cell.nonlinearity == "relu" and repr(cell) == repr(nn.RNNCell(10, 20, True, "relu"))
    layer = rnnkit.RNN(3, 5, 2, "relu", False, True, 0.25, True)
    reference = nn.RNN(3, 5, 2, "relu", False, True, 0.25, True)
    assert (layer.mode, layer.bias, layer.batch_first, layer.dropout, layer.bidirectional) == \
        (reference.mode, reference.bias, reference.batch_first, reference.dropout, reference.bidirectional)


CONFIGS = [((D, H), {}), ((D, H, 2), {"bidirectional": True}), ((D, H), {"bias": False, "batch_first": True}),
           ((D, H, 3), {"dropout": 0.5}), ((D, H), {"dropout": 1})]


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize(("args", "kwargs"), CONFIGS)
def test_attributes_and_repr_equal_torchs(kind, args, kwargs):
    theirs_cls, ours_cls = LAYERS[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropout with one layer: both warn (test_dropout_range)
        theirs, ours = theirs_cls(*args, **kwargs), ours_cls(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    for name in ("mode", "proj_size", "input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                 "bidirectional", "_flat_weights_names", "_all_weights"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [[w.shape for w in ws] for ws in ours.all_weights] == [[w.shape for w in ws] for ws in theirs.all_weights]
    assert [name for name, _ in ours.named_modules()] == [name for name, _ in theirs.named_modules()] == [""]


@pytest.mark.parametrize(("ctor", "expected"), [
    (lambda: rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True), "LSTM(3, 5, num_layers=2, bidirectional=True)"),
    (lambda: rnnkit.LSTM(3, 5, proj_size=2), "LSTM(3, 5, proj_size=2)"),
    (lambda: rnnkit.RNN(3, 5, nonlinearity="relu"), repr(nn.RNN(3, 5, nonlinearity="relu"))),
    (lambda: rnnkit.GRU(3, 5, backend="native"), "GRU(3, 5, backend='native')"),
    (lambda: rnnkit.GRU(3, 5, 2, layer_norm=True, zoneout=0.1),
     "GRU(3, 5, num_layers=2, layer_norm=True, zoneout=0.1)"),
    (lambda: rnnkit.Recurrent(rnnkit.RNNCell, 3, 5, nonlinearity="relu"),
     "Recurrent(RNNCell, 3, 5, nonlinearity='relu')"),
    (lambda: rnnkit.GRUCell(3, 5, False), repr(nn.GRUCell(3, 5, False))),
    (lambda: rnnkit.RNNCell(3, 5, nonlinearity="relu"), repr(nn.RNNCell(3, 5, nonlinearity="relu"))),
    (lambda: rnnkit.LSTMCell(3, 5, layer_norm=True), "LSTMCell(3, 5, layer_norm=True)"),
])
def test_repr_is_torchs_then_rnnkit_options(ctor, expected):
    assert repr(ctor()) == expected


@pytest.mark.parametrize("kind", LAYERS)
def test_flat_weights_follow_load_to_and_parametrizations(kind):
    theirs_cls, ours_cls = LAYERS[kind]
    theirs, ours = theirs_cls(D, H, 2), ours_cls(D, H, 2)
    ours.load_state_dict(theirs.state_dict())
    for a, b in zip(ours._flat_weights, theirs._flat_weights, strict=True):
        assert torch.equal(a, b)
    ours.double()
    assert all(w.dtype == torch.float64 for w in ours._flat_weights)
    assert all(w is getattr(ours, n) for w, n in zip(ours._flat_weights, ours._flat_weights_names, strict=True))
    ours.float()

    class Doubled(nn.Module):
        def forward(self, w):
            return 2 * w

    for module in (theirs, ours):
        parametrize.register_parametrization(module, "weight_hh_l0", Doubled())
    index = ours._flat_weights_names.index("weight_hh_l0")
    torch.testing.assert_close(ours._flat_weights[index], 2 * ours.parametrizations.weight_hh_l0.original)
    torch.testing.assert_close(ours.all_weights[0][1], theirs.all_weights[0][1])
    x = torch.randn(4, 2, D)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], theirs(x)[0])


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_one_is_accepted_and_matches_torch(kind, backend):
    theirs_cls, ours_cls = LAYERS[kind]
    for cls in (theirs_cls, ours_cls):
        with pytest.warns(UserWarning, match="dropout"):
            cls(D, H, 1, dropout=1)
    theirs = theirs_cls(D, H, 2, dropout=1.0).double()
    ours = ours_cls(D, H, 2, dropout=1.0, backend=backend).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(4, 3, D, dtype=torch.float64)
    # In training every unit between the layers is dropped: the second layer reads zeros, on either side.
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize(("input_size", "hidden_size"), [(3, 0), (0, 4), (0, 0)])
def test_cells_accept_zero_sizes_like_torch(kind, input_size, hidden_size):
    theirs_cls, ours_cls = CELLS[kind]
    theirs, ours = theirs_cls(input_size, hidden_size), ours_cls(input_size, hidden_size)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, input_size)
    torch.testing.assert_close(ours(x), theirs(x))


def test_layers_are_copyable_and_picklable():
    layer = rnnkit.LSTM(D, H, 2, proj_size=2)
    x = torch.randn(4, 2, D)
    twin = copy.deepcopy(layer)
    torch.testing.assert_close(twin(x), layer(x))
    assert twin.cells[0] is not layer.cells[0] and twin._flat_weights[0] is twin.weight_ih_l0


class Wrapper(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize(("module", "x"), [
    (lambda: rnnkit.LSTM(D, H, 2, bidirectional=True), torch.randn(4, 2, D)),
    (lambda: rnnkit.LSTM(D, H, proj_size=2), torch.randn(4, 2, D)),
    (lambda: rnnkit.GRU(D, H, batch_first=True), torch.randn(2, 4, D)),
    (lambda: rnnkit.RNN(D, H, nonlinearity="relu"), torch.randn(4, 2, D)),
    (lambda: rnnkit.RNNCell(D, H, True, "relu"), torch.randn(2, D)),
    (lambda: rnnkit.LSTMCell(D, H), torch.randn(2, D)),
    (lambda: rnnkit.GRUCell(D, H), torch.randn(2, D)),
])
def test_jit_script_runs_torchs_twin_with_the_same_parameters(module, x):
    model = Wrapper(module())
    scripted = torch.jit.script(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
        torch.testing.assert_close(scripted(x), model(x))
    # Shared, not copied: a step on the scripted module trains the rnnkit one.
    assert scripted.inner.weight_ih_l0 is model.inner.weight_ih_l0 if hasattr(model.inner, "weight_ih_l0") \
        else scripted.inner.weight_ih is model.inner.weight_ih


@pytest.mark.parametrize("module", [
    lambda: rnnkit.GRU(D, H, zoneout=0.1), lambda: rnnkit.LSTMCell(D, H, layer_norm=True),
    lambda: rnnkit.Recurrent(type("MyCell", (rnnkit.RNNCell,), {}), D, H),
])
def test_jit_script_of_what_torch_cannot_express_points_to_compile(module):
    with pytest.raises(RuntimeError, match=r"torch.jit.script cannot compile .*torch.compile.*torch.export"):
        torch.jit.script(Wrapper(module()))
