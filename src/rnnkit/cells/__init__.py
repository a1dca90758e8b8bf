"""One time step each, written from the lesson's equations."""

from rnnkit.cells.base import Cell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.mingru import MinGRUCell
from rnnkit.cells.minlstm import MinLSTMCell
from rnnkit.cells.rnn import RNNCell

# The cells rnnkit ships (what a trace's series are gathered from, ``rnnkit.layers.trace.SERIES``).
BUILT_IN_CELLS = (LSTMCell, GRUCell, RNNCell, MinGRUCell, MinLSTMCell)

__all__ = ["BUILT_IN_CELLS", "Cell", "RNNCell", "LSTMCell", "GRUCell", "MinGRUCell", "MinLSTMCell"]
