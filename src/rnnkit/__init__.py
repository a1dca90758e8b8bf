"""rnnkit: recurrent neural networks for text, from the equations to a served model."""

from rnnkit.cells import Cell, GRUCell, LSTMCell, RNNCell
from rnnkit.engine import available_backends, register_backend
from rnnkit.layers import GRU, LSTM, RNN, Recurrent, StateTrace

__version__ = "0.1.0"

__all__ = [
    "Cell", "RNNCell", "LSTMCell", "GRUCell",
    "Recurrent", "RNN", "LSTM", "GRU", "StateTrace",
    "available_backends", "register_backend",
]
