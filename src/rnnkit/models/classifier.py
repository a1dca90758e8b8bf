"""The text classifier network: the lesson's model with pooling and dropout."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.models.config import ClassifierConfig
from rnnkit.models.encoder import Encoder
from rnnkit.models.pooling import parse_pooling, pool


class RNNClassifier(nn.Module):
    """ids (B, T), lengths (B,) → logits (B, C).

    Embedding → recurrent stack → pooling over valid steps (last, mean, max,
    combinable) → dropout → Linear.
    """

    def __init__(self, config: ClassifierConfig, vocab_size: int, num_classes: int, pad_id: int = 0):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, vocab_size, pad_id)
        self.parts = parse_pooling(config.pooling)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.encoder.output_size * len(self.parts), num_classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        outputs, h_last, _ = self.encoder(ids, lengths)
        return self.head(self.dropout(pool(outputs, lengths, h_last, self.parts)))


class EnsembleClassifier(nn.Module):
    """Several classifiers read the same batch; the output is the log of their mean probabilities.

    Returning log-probabilities keeps every caller unchanged: softmax of the output is the mean
    of the members' softmaxes.
    """

    def __init__(self, members: list[RNNClassifier]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        log_probs = torch.stack([m(ids, lengths).log_softmax(-1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def build_classifier(config: ClassifierConfig, vocab_size: int, num_classes: int, pad_id: int = 0) -> nn.Module:
    """One network, or an ensemble of ``config.ensemble`` of them."""
    if config.ensemble == 1:
        return RNNClassifier(config, vocab_size, num_classes, pad_id)
    return EnsembleClassifier([RNNClassifier(config, vocab_size, num_classes, pad_id) for _ in range(config.ensemble)])
