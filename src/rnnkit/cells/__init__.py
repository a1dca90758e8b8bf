"""One time step each, written from the lesson's equations."""

from rnnkit.cells.base import Cell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.mingru import MinGRUCell
from rnnkit.cells.minlstm import MinLSTMCell
from rnnkit.cells.rnn import RNNCell

__all__ = ["Cell", "RNNCell", "LSTMCell", "GRUCell", "MinGRUCell", "MinLSTMCell"]
