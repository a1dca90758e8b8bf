"""A classifier's own encoder read as a word language model, one direction at a time (ULMFiT's pre-training).

``EncoderLM(encoder, direction)`` shares the encoder's embedding and the recurrent weights of one direction: training
it trains exactly the tensors the classifier will later read with, so nothing has to be copied back. The forward
direction predicts the next token of a text; the backward direction reads the text reversed and predicts the
token before, which is what the classifier's backward recurrence computes over a reversed sequence. Each direction
has its own output head (a projection to the embedding size when the hidden size differs, and a bias) whose output
matrix is the embedding itself, transposed (weight tying, Press & Wolf 2017), so the head adds few parameters and the
language model's output layer also trains the embedding.

Only stacks where each direction is a language model on its own can be pre-trained this way: one direction of any
depth, or both directions of a single layer. In a deeper bidirectional stack every upper layer reads both directions
of the layer below, so its forward recurrence sees the future it should predict.

Shapes as ``RNNLanguageModel``: ids (B, T) → logits (B, T, V), with the recurrent state carried between calls.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.models.config import EncoderConfig
from rnnkit.models.encoder import Encoder, make_recurrent
from rnnkit.models.language_model import locked_dropout

DIRECTIONS = ("forward", "backward")


def lm_directions(config: EncoderConfig) -> tuple[str, ...]:
    """The directions pre-training trains for ``config``; a ValueError naming the fields if it cannot."""
    if config.bidirectional and config.num_layers > 1:
        raise ValueError(f"pretrain_lm needs a stack whose directions are language models on their own: with "
                         f"bidirectional=True and num_layers={config.num_layers} every upper layer reads the backward "
                         "direction too, so it would see the words it must predict; use num_layers=1 or "
                         "--no-bidirectional")
    return DIRECTIONS if config.bidirectional else DIRECTIONS[:1]


class LMHead(nn.Module):
    """Hidden states (B, T, H) → logits (B, T, V) through the (tied) embedding matrix."""

    def __init__(self, hidden_size: int, embedding_dim: int, vocab_size: int):
        super().__init__()
        self.projection = nn.Linear(hidden_size, embedding_dim, bias=False) if hidden_size != embedding_dim else None
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def project(self, hidden: Tensor) -> Tensor:
        """Hidden states in the embedding's space (what meets the output matrix)."""
        return hidden if self.projection is None else self.projection(hidden)

    def forward(self, hidden: Tensor, embedding_weight: Tensor) -> Tensor:
        return F.linear(self.project(hidden), embedding_weight, self.bias)


class SampledSoftmax:
    """The training loss of a large-vocabulary LM head from the true word and ``samples`` sampled ones.

    A full softmax over BBC News' 17,254 words cost ~95% of a pre-training step (1.09 s for 32 x 70 tokens on one
    thread, against 0.12 s with 2,000 words; benchmark in the issue notes). This is the sampled softmax of Jean et al.
    (2015) as TensorFlow's ``sampled_softmax_loss`` computes it: each step draws ``samples`` words (with replacement)
    from the unigram distribution raised to ``power``, shared by every position; every logit, the true word's and the
    sampled ones', has log(expected count of the word among the samples) subtracted (the correction that makes the
    sampled loss's gradient approach the full softmax's as the samples grow); a sample equal to the position's true
    word is masked out. Evaluation keeps the full softmax, so the reported perplexity is exact. Samples come from
    torch's global generator, which the trainer seeds and saves, so a resumed run draws the same ones.
    """

    def __init__(self, counts: Tensor, samples: int, power: float = 0.75):
        q = (counts.double().clamp(min=0) + 1.0) ** power  # +1: every word can be drawn, so log q is finite
        q = q / q.sum()
        self.samples = samples
        self.q = q.float()
        self.log_expected = torch.log(q * samples).float()

    def loss(self, hidden: Tensor, targets: Tensor, weight: Tensor, bias: Tensor, sampled: Tensor | None = None
             ) -> Tensor:
        """hidden (N, E) in the output matrix's space, targets (N,), weight (V, E), bias (V,) → mean loss.

        ``sampled``: the word ids to contrast with (default: ``samples`` drawn from the distribution)."""
        if self.q.device != hidden.device:
            # Moved once and kept there: both are vocabulary-sized, and a step on a GPU would copy them every time.
            self.q, self.log_expected = self.q.to(hidden.device), self.log_expected.to(hidden.device)
        if sampled is None:
            sampled = torch.multinomial(self.q, self.samples, replacement=True)
        log_expected = self.log_expected
        true = (hidden * weight[targets]).sum(1) + bias[targets] - log_expected[targets]
        others = hidden @ weight[sampled].t() + bias[sampled] - log_expected[sampled]
        others = others.masked_fill(sampled.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
        logits = torch.cat([true.unsqueeze(1), others], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))


def direction_view(encoder: Encoder, direction: str) -> nn.Module:
    """A one-direction recurrent stack whose parameters ARE the encoder's for ``direction`` (shared, not copied)."""
    config = encoder.config
    lm_directions(config)
    if not config.bidirectional:
        if direction != "forward":
            raise ValueError(f"a unidirectional encoder has no {direction!r} direction")
        return encoder.rnn
    single = EncoderConfig(cell=config.cell, embedding_dim=config.embedding_dim, hidden_size=config.hidden_size,
                           num_layers=1, bidirectional=False, backend=config.backend, cell_form=config.cell_form)
    view = make_recurrent(single, config.embedding_dim)
    suffix = "_reverse" if direction == "backward" else ""
    for name in list(view._parameters):
        # Module.__setattr__ with a Parameter re-registers it under the same name: the view now runs on the
        # encoder's tensor, and a gradient through the view lands on it.
        setattr(view, name, encoder.rnn._parameters[name + suffix])
    return view


class EncoderLM(nn.Module):
    """``encoder`` read in ``direction`` as a language model: (ids (B, T), state) → (logits (B, T, V), state).

    ``dropout``: locked dropout on the recurrent outputs before the head (the encoder's own embedding dropout
    applies to its inputs, as in the classifier).
    """

    def __init__(self, encoder: Encoder, direction: str, dropout: float = 0.1):
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")
        self.direction, self.dropout = direction, dropout
        self.embedding = encoder.embedding
        self.embedding_dropout = encoder.embedding_dropout
        self.rnn = direction_view(encoder, direction)
        self.head = LMHead(encoder.config.hidden_size, encoder.config.embedding_dim, encoder.embedding.num_embeddings)

    def features(self, ids: Tensor, state=None, lengths: Tensor | None = None):
        """(states projected into the embedding's space (B, T, E), new state): what the output matrix reads."""
        x = self.embedding_dropout(self.embedding(ids))
        outputs, final = self.rnn(x, state, lengths=lengths)
        outputs = locked_dropout(outputs, self.dropout, self.training)
        return self.head.project(outputs), final

    def forward(self, ids: Tensor, state=None, lengths: Tensor | None = None):
        features, final = self.features(ids, state, lengths)
        return F.linear(features, self.embedding.weight, self.head.bias), final


__all__ = ["EncoderLM", "LMHead", "SampledSoftmax", "DIRECTIONS", "direction_view", "lm_directions"]
