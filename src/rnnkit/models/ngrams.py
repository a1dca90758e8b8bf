"""A bag of hashed word n-grams read straight from the token ids: the fastText path beside the recurrence.

Unigrams are the vocabulary ids themselves; a bigram (a, b) of consecutive ids is hashed into one of
``buckets`` extra rows (Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification"). The rows
of a text's n-grams are summed and divided by the square root of their count: for mostly distinct n-grams
that is the L2-normalised count vector a TF-IDF + linear SVM reads, so long and short texts give bags of a
similar size, and one n-gram's say shrinks as ``1/sqrt(n)`` rather than fastText's ``1/n``.

Only positions before each length count, whatever ids sit past it (they are replaced by the pad id before
the lookup, so out-of-range garbage cannot index the table either).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# Multiplier of the first id in the bigram hash: a prime, odd and far from a power of two (2**31 - 1 would be -1
# modulo any power-of-two bucket count, making (a, b) and (a + 1, b + 1) collide), and small enough that
# a * P + b stays inside int64 for any id below 2**40.
BIGRAM_MULTIPLIER = 1_000_003


def bigram_buckets(ids: Tensor, buckets: int) -> Tensor:
    """ids (B, T) → bucket index (B, T - 1) in ``[0, buckets)`` of each consecutive pair."""
    a, b = ids[:, :-1].long(), ids[:, 1:].long()
    return torch.remainder(a * BIGRAM_MULTIPLIER + b, buckets)


class NgramBag(nn.Module):
    """ids (B, T), lengths (B,) → (B, dim): sum of unigram and hashed-bigram rows over sqrt(count).

    With ``zero_init`` the table starts at zero, as a linear model's weights do (the logit path); otherwise
    it is drawn like an embedding, scaled so that a bag starts with entries of order 0.1 (the feature path).
    """

    def __init__(self, vocab_size: int, buckets: int, dim: int, pad_id: int = 0, zero_init: bool = False,
                 sparse: bool = True, lr_scale: float = 1.0):
        super().__init__()
        if buckets < 1:
            raise ValueError(f"ngram_buckets must be >= 1, got {buckets}")
        self.vocab_size, self.buckets, self.pad_id = vocab_size, buckets, pad_id
        # Sparse gradients: a batch touches a few hundred of the table's rows, and the optimizer updates only
        # those (training/sparse.py) instead of every row at every step.
        self.table = nn.EmbeddingBag(vocab_size + buckets, dim, mode="sum", sparse=sparse)
        # Read by training/optim.py: a row of a rare n-gram is updated only at the few steps that see it.
        self.table.lr_scale = lr_scale
        with torch.no_grad():
            if zero_init:
                self.table.weight.zero_()
            else:
                self.table.weight.normal_(0.0, 0.1)

    def bags(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(indices (B, 2T - 1), weights (B, 2T - 1)): every n-gram's row and its weight, 0 past the length."""
        steps = torch.arange(ids.shape[1], device=ids.device)
        lengths = lengths.to(ids.device)
        valid = steps.unsqueeze(0) < lengths.unsqueeze(1)
        ids = ids.masked_fill(~valid, self.pad_id)
        unigrams, unigram_ok = ids.long(), valid & (ids != self.pad_id)
        bigrams = self.vocab_size + bigram_buckets(ids, self.buckets)
        bigram_ok = valid[:, 1:]  # the pair (t, t + 1) counts when t + 1 is still inside the text
        indices = torch.cat([unigrams, bigrams], dim=1)
        ok = torch.cat([unigram_ok, bigram_ok], dim=1)
        weights = ok.to(self.table.weight.dtype)
        weights = weights / weights.sum(1, keepdim=True).clamp(min=1.0).sqrt()
        return indices, weights

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        indices, weights = self.bags(ids, lengths)
        # Only the n-grams that count are looked up, each text's as one bag (offsets): the sum then adds the same
        # terms in the same order however much padding the batch has, so a text scores the same to the last bit
        # alone or beside a longer one (a padded bag of zero-weighted rows is summed in another order).
        keep = weights != 0
        counts = keep.sum(1)
        offsets = torch.cumsum(counts, 0) - counts
        return self.table(indices[keep], offsets, per_sample_weights=weights[keep])
