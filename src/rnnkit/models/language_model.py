"""A recurrent language model: predicts the next token from the state so far.

Shapes: ids (B, T) batch-first; logits (B, T, V); state as the recurrent layer's
(L, B, H) tensor or (h, c) pair. Layers run one at a time so that dropout can sit
between them with one mask per sequence for every time step ("locked" dropout).
With ``block="residual"`` each layer sits in a pre-norm residual block with an MLP
(``rnnkit.models.residual``); the state is the same list, one entry per layer.
"""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit.models.config import EncoderConfig, LanguageModelConfig
from rnnkit.models.encoder import make_recurrent
from rnnkit.models.residual import ResidualParts


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout on (B, T, F) with the same mask at every time step of a sequence."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedding_dropout(embedding: nn.Embedding, ids: Tensor, p: float, training: bool) -> Tensor:
    """Drop whole vocabulary rows (the same token is dropped wherever it occurs in the batch)."""
    if not training or p == 0:
        return embedding(ids)
    keep = embedding.weight.new_empty(embedding.weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
    return nn.functional.embedding(ids, embedding.weight * keep, embedding.padding_idx)


class RNNLanguageModel(nn.Module):
    def __init__(self, config: LanguageModelConfig, vocab_size: int, pad_id: int = 0):
        super().__init__()
        self.config = config
        residual = config.block == "residual"
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=pad_id)
        # A residual stack adds to x, so x is H wide from the first block on: a Linear lifts the embedding to H.
        # (Residual-only modules are made only for block=residual: a plain model draws its initial weights in
        # the same order as before the option existed.)
        self.inlet = (nn.Linear(config.embedding_dim, config.hidden_size)
                      if residual and config.embedding_dim != config.hidden_size else None)
        first_input = config.hidden_size if residual else config.embedding_dim
        layers = []
        for k in range(config.num_layers):
            sub = EncoderConfig(cell=config.cell, embedding_dim=config.embedding_dim, hidden_size=config.hidden_size,
                                num_layers=1, bidirectional=False, backend=config.backend, cell_form=config.cell_form)
            layers.append(make_recurrent(sub, first_input if k == 0 else config.hidden_size))
        self.layers = nn.ModuleList(layers)
        self.blocks = (nn.ModuleList(ResidualParts(config.hidden_size, config.mlp_ratio) for _ in layers)
                       if residual else None)
        self.final_norm = nn.LayerNorm(config.hidden_size) if residual else None
        self.projection = None
        if config.tie_weights and config.hidden_size != config.embedding_dim:
            self.projection = nn.Linear(config.hidden_size, config.embedding_dim, bias=False)
        out_dim = config.embedding_dim if config.tie_weights else config.hidden_size
        self.decoder = nn.Linear(out_dim, vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight

    @property
    def is_lstm(self) -> bool:
        return self.config.cell == "lstm"

    def forward(self, ids: Tensor, state=None, lengths: Tensor | None = None):
        """Return (logits (B, T, V), new state). ``state`` is a list with one entry per layer."""
        x = self.embed(ids)
        new_state = []
        for k, layer in enumerate(self.layers):
            out, s = layer(self.layer_input(k, x), None if state is None else state[k], lengths=lengths)
            new_state.append(s)
            x = self.layer_output(k, x, out)
        return self.decoder(self.head_input(x)), new_state

    # The steps of ``forward``, also run one by one by serve's inspection (which traces each recurrence).
    def embed(self, ids: Tensor) -> Tensor:
        """ids (B, T) → what the first layer's step reads (B, T, E), or (B, T, H) through the residual inlet."""
        x = embedding_dropout(self.embedding, ids, self.config.embedding_dropout, self.training)
        x = locked_dropout(x, self.config.dropout, self.training)
        return x if self.inlet is None else self.inlet(x)

    def layer_input(self, k: int, x: Tensor) -> Tensor:
        """What recurrent layer ``k`` reads: x itself, or LayerNorm(x) in a residual block."""
        return x if self.blocks is None else self.blocks[k].norm(x)

    def layer_output(self, k: int, x: Tensor, out: Tensor) -> Tensor:
        """x after layer ``k`` whose recurrence gave ``out``: drop(out), or the residual block's two adds."""
        out = locked_dropout(out, self.config.dropout, self.training)
        if self.blocks is None:
            return out
        x = x + out
        mlp = self.blocks[k].mlp
        return x if mlp is None else x + locked_dropout(mlp(x), self.config.dropout, self.training)

    def head_input(self, x: Tensor) -> Tensor:
        """The top layer's x as the decoder reads it: the residual stack's final LayerNorm, the tied projection."""
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x if self.projection is None else self.projection(x)


def detach_state(state):
    """Cut the graph between BPTT windows while keeping the values."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple):
        return tuple(detach_state(s) for s in state)
    return [detach_state(s) for s in state]


def select_state(state, index: Tensor):
    """Keep the batch rows ``index`` of a state (for reordering or trimming streams)."""
    if isinstance(state, Tensor):
        return state.index_select(1, index)
    if isinstance(state, tuple):
        return tuple(select_state(s, index) for s in state)
    return [select_state(s, index) for s in state]


__all__ = ["RNNLanguageModel", "detach_state", "select_state", "locked_dropout", "embedding_dropout"]
