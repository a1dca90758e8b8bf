"""The pre-norm residual block around each recurrent layer of a language model (``block="residual"``).

Feng et al. (2024, "Were RNNs All We Needed?") stack minGRU / minLSTM layers this way, as a Transformer stacks
attention: for each layer k, with x (B, T, H),

    x ← x + drop(RNN_k(LayerNorm(x)))
    x ← x + drop(MLP_k(LayerNorm(x)))          MLP(x) = W₂ · GELU(W₁ x + b₁) + b₂,  W₁: (m·H, H), W₂: (H, m·H)

and one LayerNorm after the last block, before the decoder. A min cell's recurrence is linear in h, so its
nonlinearity comes from depth and the MLP. ``drop`` is the model's locked dropout (one mask per sequence).
This module holds the parts the block adds; ``RNNLanguageModel`` owns the recurrent layers and the order.
"""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit.models.choices import BLOCKS


class FeedForward(nn.Module):
    """LayerNorm → Linear(H, m·H) → GELU → Linear(m·H, H): the MLP branch's output, before dropout and the add."""

    def __init__(self, hidden_size: int, ratio: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.up = nn.Linear(hidden_size, ratio * hidden_size)
        self.down = nn.Linear(ratio * hidden_size, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(nn.functional.gelu(self.up(self.norm(x))))


class ResidualParts(nn.Module):
    """What the block adds around one recurrent layer: the LayerNorm in front of it and the MLP (None if m = 0)."""

    def __init__(self, hidden_size: int, mlp_ratio: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.mlp = FeedForward(hidden_size, mlp_ratio) if mlp_ratio > 0 else None


__all__ = ["BLOCKS", "FeedForward", "ResidualParts"]
