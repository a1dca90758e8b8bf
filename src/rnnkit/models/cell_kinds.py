"""The layer each cell name of a model config builds: ``config.cell`` → a layer class and its fixed options.

The one place where a name ("gru", "rnn_relu", "mingru", ...) meets a class. The names themselves, torch-free
for the command line, are ``rnnkit.models.choices.CELLS``; this table must hold exactly those (checked on
import). What a cell kind *is* (its gates, its parameters, its back ends, the forms it takes) is read from the
layer and cell classes, so the encoder, the language model, the configs' checks and the pre-flight size check
never list cells themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from rnnkit.cells import Cell
from rnnkit.cells.minimal import FORMS
from rnnkit.layers import GRU, LSTM, RNN, MinGRU, MinLSTM, Recurrent
from rnnkit.layers.minimal import MinimalRecurrent
from rnnkit.models.choices import CELLS
from rnnkit.validation import check_choice


@dataclass(frozen=True)
class Kind:
    """A layer class and the options every layer of this name is built with (the simple RNN's nonlinearity)."""

    layer: type[Recurrent]
    options: dict[str, object] = field(default_factory=dict)

    @property
    def cell(self) -> type[Cell]:
        return self.layer.cell_class

    @property
    def forms(self) -> tuple[str, ...]:
        """The cell forms the layer takes: the minimal cells' plain and log, the others plain only."""
        return FORMS if issubclass(self.layer, MinimalRecurrent) else ("plain",)


KINDS: dict[str, Kind] = {
    "lstm": Kind(LSTM),
    "gru": Kind(GRU),
    "rnn": Kind(RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": Kind(RNN, {"nonlinearity": "relu"}),
    "mingru": Kind(MinGRU),
    "minlstm": Kind(MinLSTM),
}
if tuple(KINDS) != tuple(CELLS):
    raise RuntimeError(f"rnnkit.models.cell_kinds builds {list(KINDS)} but models.choices.CELLS names {list(CELLS)}: "
                       "a cell name needs both")


def check_options(name: str, backend: str, form: str) -> None:
    """Refuse a back end or cell form the named cell's layer cannot take, naming the argument and value."""
    kind = KINDS[name]
    check_choice("cell_form", form, FORMS)
    if form not in kind.forms:
        takers = " and ".join(n for n, k in KINDS.items() if form in k.forms)
        raise ValueError(f"cell_form={form!r} applies to {takers} only, got cell={name!r}")
    kind.layer.check_backend(backend, form)


def build_layer(name: str, form: str, **arguments) -> nn.Module:
    """The named cell's layer, built with ``arguments`` (input_size, hidden_size, ...) and its own options."""
    kind = KINDS[name]
    form_argument = {"form": form} if len(kind.forms) > 1 else {}
    return kind.layer(**arguments, **kind.options, **form_argument)


__all__ = ["KINDS", "Kind", "build_layer", "check_options"]
