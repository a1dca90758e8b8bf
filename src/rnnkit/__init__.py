"""rnnkit: recurrent neural networks for text, from the equations to a served model."""

from typing import TYPE_CHECKING

from rnnkit.lazy_names import lazy_names

__version__ = "0.1.0"

# Every public name is imported on first use: `import rnnkit` (and so the `rnnkit` command, whose entry point lives
# in this package) loads no torch until a layer, a cell or the task-level API is asked for.
_HOMES = {
    **dict.fromkeys(["Cell", "RNNCell", "LSTMCell", "GRUCell", "MinGRUCell", "MinLSTMCell"], "rnnkit.cells"),
    **dict.fromkeys(["Recurrent", "RNN", "LSTM", "GRU", "MinGRU", "MinLSTM", "StateTrace"], "rnnkit.layers"),
    **dict.fromkeys(["available_backends", "register_backend"], "rnnkit.engine"),
    **dict.fromkeys(["train_classifier", "Classifier"], "rnnkit.api.classifier"),
    **dict.fromkeys(["train_language_model", "LanguageModel"], "rnnkit.api.language_model"),
}
__getattr__, __dir__ = lazy_names(__name__, _HOMES)

if TYPE_CHECKING:  # for type checkers and the API reference, which read the names from here
    from rnnkit.api.classifier import Classifier, train_classifier
    from rnnkit.api.language_model import LanguageModel, train_language_model
    from rnnkit.cells import Cell, GRUCell, LSTMCell, MinGRUCell, MinLSTMCell, RNNCell
    from rnnkit.engine import available_backends, register_backend
    from rnnkit.layers import GRU, LSTM, RNN, MinGRU, MinLSTM, Recurrent, StateTrace

__all__ = [
    "Cell", "RNNCell", "LSTMCell", "GRUCell", "MinGRUCell", "MinLSTMCell",
    "Recurrent", "RNN", "LSTM", "GRU", "MinGRU", "MinLSTM", "StateTrace",
    "available_backends", "register_backend",
    "train_classifier", "Classifier", "train_language_model", "LanguageModel",
]
