"""rnnkit: recurrent neural networks for text, from the equations to a served model."""

from rnnkit.cells import Cell, GRUCell, LSTMCell, MinGRUCell, MinLSTMCell, RNNCell
from rnnkit.engine import available_backends, register_backend
from rnnkit.layers import GRU, LSTM, RNN, MinGRU, MinLSTM, Recurrent, StateTrace

__version__ = "0.1.0"

# The task-level API pulls in data, training and plotting code: import it only when asked for.
_LAZY = {
    "train_classifier": "rnnkit.api.classifier", "Classifier": "rnnkit.api.classifier",
    "train_language_model": "rnnkit.api.language_model", "LanguageModel": "rnnkit.api.language_model",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")

__all__ = [
    "Cell", "RNNCell", "LSTMCell", "GRUCell", "MinGRUCell", "MinLSTMCell",
    "Recurrent", "RNN", "LSTM", "GRU", "MinGRU", "MinLSTM", "StateTrace",
    "available_backends", "register_backend",
    "train_classifier", "Classifier", "train_language_model", "LanguageModel",
]
