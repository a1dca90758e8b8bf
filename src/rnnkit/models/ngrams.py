"""A bag of hashed word n-grams read straight from the token ids: the fastText path beside the recurrence.

Unigrams are the vocabulary ids themselves; a bigram (a, b) of consecutive ids is hashed into one of
``buckets`` extra rows (Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification"). Each
occurrence of an n-gram adds its row times a weight w, and the bag is divided by sqrt(sum of w^2) over the
text's occurrences: the L2 norm of the weight vector when the n-grams are distinct, so long and short texts
give bags of a similar size. With ``weighting="count"`` every w is 1 (the norm is sqrt(count): one n-gram's
say shrinks as ``1/sqrt(n)`` rather than fastText's ``1/n``); with ``weighting="idf"`` w is the row's inverse
document frequency over the training texts, ``ln((1 + N) / (1 + df)) + 1`` (scikit-learn's smoothed idf),
so a rare n-gram speaks louder than "of the" — the weighting a TF-IDF + linear SVM reads. The idf is a
buffer fitted once before training (``fit_idf``) and saved with the model.

With ``dropout`` p, training drops each occurrence's weighted entry with probability p and scales the rest by
1 / (1 - p) (the bag's expected value is unchanged; evaluation uses every n-gram). Dropout on the features of a
linear model acts as an adaptive L2 penalty that favours rare, discriminative features (Wager, Wang & Liang
2013, "Dropout Training as Adaptive Regularization"): without it the table can learn every training text by
its rare n-grams within an epoch or two, after which nothing is left for the recurrence to learn.

Only positions before each length count, whatever ids sit past it (they are replaced by the pad id before
the lookup, so out-of-range garbage cannot index the table either).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rnnkit.models.choices import WEIGHTINGS
from rnnkit.validation import check_choice, check_probability

# Multiplier of the first id in the bigram hash: a prime, odd and far from a power of two (2**31 - 1 would be -1
# modulo any power-of-two bucket count, making (a, b) and (a + 1, b + 1) collide), and small enough that
# a * P + b stays inside int64 for any id below 2**40.
BIGRAM_MULTIPLIER = 1_000_003
# "auto" weighs by idf when the median training text, cut to max_length, has at least this many tokens. On
# validation (benchmarks/results/ngram_validation.md) idf won on the two document sets (BBC News, median 378
# tokens; 20 Newsgroups, 160) and lost a little on the two sentence-length ones (Rotten Tomatoes and health
# tweets, 20-21): in a document most n-grams say little and idf lets the rare, telling ones count; in a sentence
# nearly every n-gram is rare, and idf mostly amplifies noise. Any threshold from 22 to 159 splits those sets
# alike; 100 is a round number in the gap.
AUTO_IDF_MEDIAN_TOKENS = 100


def auto_weighting(lengths: Sequence[int], max_length: int | None = None) -> str:
    """What ngram_weighting="auto" means for training texts of these lengths (in tokens): "idf" or "count"."""
    cut = sorted(min(n, max_length) if max_length else n for n in lengths)
    if not cut:
        return "count"
    middle = len(cut) // 2
    median = cut[middle] if len(cut) % 2 else (cut[middle - 1] + cut[middle]) / 2
    return "idf" if median >= AUTO_IDF_MEDIAN_TOKENS else "count"


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
                 sparse: bool = True, lr_scale: float = 1.0, weighting: str = "count", dropout: float = 0.0):
        super().__init__()
        if buckets < 1:
            raise ValueError(f"ngram_buckets must be >= 1, got {buckets}")
        check_choice("ngram_weighting", weighting, WEIGHTINGS)
        check_probability("ngram_dropout", dropout)
        self.vocab_size, self.buckets, self.pad_id, self.weighting = vocab_size, buckets, pad_id, weighting
        self.dropout = dropout
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
        # Only an idf bag has the buffer, so a count bag's state dict is what it always was (old checkpoints load).
        # Ones (the count bag's weights) until fit_idf; then a row no training text holds has the largest idf.
        self.register_buffer("idf", torch.ones(vocab_size + buckets) if weighting == "idf" else None)

    def rows(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(indices (B, 2T - 1), ok (B, 2T - 1) bool): every n-gram's row, and whether it counts."""
        steps = torch.arange(ids.shape[1], device=ids.device)
        lengths = lengths.to(ids.device)
        valid = steps.unsqueeze(0) < lengths.unsqueeze(1)
        ids = ids.masked_fill(~valid, self.pad_id)
        unigrams, unigram_ok = ids.long(), valid & (ids != self.pad_id)
        bigrams = self.vocab_size + bigram_buckets(ids, self.buckets)
        bigram_ok = valid[:, 1:]  # the pair (t, t + 1) counts when t + 1 is still inside the text
        indices = torch.cat([unigrams, bigrams], dim=1)
        return indices, torch.cat([unigram_ok, bigram_ok], dim=1)

    def bags(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(indices (B, 2T - 1), weights (B, 2T - 1)): every n-gram's row and its weight, 0 past the length."""
        indices, ok = self.rows(ids, lengths)
        weights = ok.to(self.table.weight.dtype)
        if self.idf is not None:
            weights = weights * self.idf.to(weights.dtype)[indices]
        # With 0/1 weights the sum of squares is the count, to the bit; an idf is >= 1, so the clamp only keeps an
        # empty text's bag at zero.
        weights = weights / weights.square().sum(1, keepdim=True).clamp(min=1.0).sqrt()
        if self.training and self.dropout > 0:
            # After the normalisation, so the kept entries are not rescaled to a full-size bag again.
            weights = weights * (torch.rand_like(weights) >= self.dropout) / (1.0 - self.dropout)
        return indices, weights

    @torch.no_grad()
    def fit_idf(self, texts: Sequence[Sequence[int]], max_length: int | None = None, batch_size: int = 256) -> None:
        """Set the idf of every row from the training texts (ids), each cut to ``max_length`` as the model reads it.

        A text counts once per row it holds, whatever the n-gram's repeats; rows are found by ``rows``, as the bag
        finds them, so the idf is computed over exactly the n-grams it will look up (unknown words, hashed bigrams
        and all).
        Called once before training, on the training split only.
        """
        if self.idf is None:
            raise ValueError(f"fit_idf needs ngram_weighting='idf', this bag weighs by {self.weighting!r}")
        rows = self.vocab_size + self.buckets
        df = torch.zeros(rows, dtype=torch.float64)
        for start in range(0, len(texts), batch_size):
            chunk = [list(t[:max_length] if max_length else t) for t in texts[start:start + batch_size]]
            lengths = torch.tensor([len(t) for t in chunk])
            ids = torch.full((len(chunk), max(1, int(lengths.max()))), self.pad_id, dtype=torch.long)
            for i, t in enumerate(chunk):
                ids[i, :len(t)] = torch.tensor(t, dtype=torch.long)
            indices, ok = self.rows(ids, lengths)
            # One count per (text, row): unique keys text * rows + row over the n-grams that count.
            keys = torch.unique(torch.arange(len(chunk)).unsqueeze(1).expand_as(indices)[ok] * rows + indices[ok])
            df += torch.bincount(keys % rows, minlength=rows).double()
        n = len(texts)
        self.idf.copy_(torch.log((1.0 + n) / (1.0 + df)) + 1.0)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        indices, weights = self.bags(ids, lengths)
        # Only the n-grams that count are looked up, each text's as one bag (offsets): the sum then adds the same
        # terms in the same order however much padding the batch has, so a text scores the same to the last bit
        # alone or beside a longer one (a padded bag of zero-weighted rows is summed in another order).
        keep = weights != 0
        counts = keep.sum(1)
        offsets = torch.cumsum(counts, 0) - counts
        return self.table(indices[keep], offsets, per_sample_weights=weights[keep])
