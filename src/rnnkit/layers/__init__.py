"""Layers own sequences: the time loop, lengths, directions and stacking."""

from rnnkit.layers.minimal import MinGRU, MinLSTM
from rnnkit.layers.recurrent import GRU, LSTM, RNN, Recurrent
from rnnkit.layers.trace import StateTrace

__all__ = ["Recurrent", "RNN", "LSTM", "GRU", "MinGRU", "MinLSTM", "StateTrace"]
