"""The text classifier network: the lesson's model with pooling and dropout."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.models.choices import parse_pooling
from rnnkit.models.config import ClassifierConfig
from rnnkit.models.encoder import Encoder
from rnnkit.models.ngrams import NgramBag
from rnnkit.models.pooling import pool


class RNNClassifier(nn.Module):
    """ids (B, T), lengths (B,) → logits (B, C).

    Embedding → recurrent stack → pooling over valid steps (last, mean, max,
    combinable) → dropout → Linear. With ``pool_embeddings`` each step's feature is
    [h_t; e_t] (E = embedding size), so the pooled vector also holds the bag of
    embeddings itself: F = dirs·H (+ E). With ``ngrams`` a bag of unigrams and hashed bigrams
    (``NgramBag``) either adds its own score to the logits or joins the pooled vector.
    """

    def __init__(self, config: ClassifierConfig, vocab_size: int, num_classes: int, pad_id: int = 0):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, vocab_size, pad_id)
        self.parts = parse_pooling(config.pooling)
        self.dropout = nn.Dropout(config.dropout)
        features = self.encoder.output_size + (config.embedding_dim if config.pool_embeddings else 0)
        features *= len(self.parts)
        self.ngrams = None
        if config.ngrams != "none":
            logits = config.ngrams == "logits"
            # "auto" is settled by the training pipeline from the training texts before it builds the network
            # (api/classifier.py), so a trained model's config says count or idf; a network built directly from
            # an "auto" config has nothing to fit an idf on and counts.
            weighting = "count" if config.ngram_weighting == "auto" else config.ngram_weighting
            self.ngrams = NgramBag(vocab_size, config.ngram_buckets, num_classes if logits else config.ngram_dim,
                                   pad_id, zero_init=logits, lr_scale=config.ngram_lr_scale,
                                   weighting=weighting, dropout=config.ngram_dropout)
            features += 0 if logits else config.ngram_dim
        self.head = nn.Linear(features, num_classes)

    def forward(self, ids: Tensor, lengths: Tensor, parts: bool = False) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """logits (B, C); with ``parts`` (the logit n-gram path only) also the recurrence's and the bag's own."""
        embedded = self.encoder.embed(ids)
        outputs, h_last, _ = self.encoder(ids, lengths, embedded=embedded)
        if self.config.pool_embeddings:
            # Zero e_t past each length, as h_t is there (mean pooling's sum relies on it), whatever id pads the
            # row; "last" pairs the final state with the last valid token's embedding.
            lengths = lengths.to(ids.device)
            valid = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)
            embedded = embedded * valid.unsqueeze(2).to(embedded.dtype)
            last = embedded[torch.arange(ids.shape[0], device=ids.device), lengths - 1]
            outputs, h_last = torch.cat([outputs, embedded], dim=2), torch.cat([h_last, last], dim=1)
        pooled = pool(outputs, lengths, h_last, self.parts)
        if self.config.ngrams == "features":
            pooled = torch.cat([pooled, self.ngrams(ids, lengths)], dim=1)
        logits = self.head(self.dropout(pooled))
        if self.config.ngrams != "logits":
            if parts:
                raise ValueError(f"parts=True needs ngrams='logits', this model has ngrams={self.config.ngrams!r}")
            return logits
        bag = self.ngrams(ids, lengths)
        return (logits + bag, logits, bag) if parts else logits + bag


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
