"""Embedding followed by an rnnkit recurrent stack, batch-first, with lengths."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.models.cell_kinds import build_layer
from rnnkit.models.config import EncoderConfig


def make_recurrent(config: EncoderConfig, input_size: int) -> nn.Module:
    """The config's recurrent stack (its cell, sizes, directions and back end), batch-first."""
    return build_layer(config.cell, config.cell_form, input_size=input_size, hidden_size=config.hidden_size,
                       num_layers=config.num_layers, batch_first=True, dropout=config.layer_dropout,
                       bidirectional=config.bidirectional, backend=config.backend)


class Encoder(nn.Module):
    """ids (B, T) and lengths (B,) → outputs (B, T, dirs·H) zero past lengths, h_last (B, dirs·H)."""

    def __init__(self, config: EncoderConfig, vocab_size: int, pad_id: int = 0):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=pad_id)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.rnn = make_recurrent(config, config.embedding_dim)
        self.output_size = config.hidden_size * (2 if config.bidirectional else 1)
        # Rows that keep their pretrained values (set by the GloVe initialisation when freeze_pretrained is on).
        self.register_buffer("frozen_rows", torch.zeros(vocab_size, dtype=torch.bool), persistent=False)
        self.embedding.weight.register_hook(self._mask_frozen)

    def _mask_frozen(self, grad: Tensor) -> Tensor:
        if not self.config.freeze_pretrained or not bool(self.frozen_rows.any()):
            return grad
        return grad.masked_fill(self.frozen_rows.unsqueeze(1), 0.0)

    def embed(self, ids: Tensor) -> Tensor:
        """ids (B, T) → (B, T, E), dropout applied; the pad id's row is zero."""
        return self.embedding_dropout(self.embedding(ids))

    def forward(self, ids: Tensor, lengths: Tensor, state=None, embedded: Tensor | None = None):
        """``embedded``: ``embed(ids)`` already computed by the caller (it is then not recomputed)."""
        x = self.embed(ids) if embedded is None else embedded
        outputs, final = self.rnn(x, state, lengths=lengths)
        h_n = final[0] if isinstance(final, tuple) else final
        dirs = 2 if self.config.bidirectional else 1
        # The top layer's final state of each direction, at each sequence's own last token.
        h_last = torch.cat(list(h_n[-dirs:]), dim=1)
        return outputs, h_last, final
