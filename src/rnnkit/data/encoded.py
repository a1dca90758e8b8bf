"""Examples tokenized and encoded once, ready to be batched.

Tokenizing is the slow part of feeding a classifier from text, and it gives the
same answer every epoch, so ``EncodedDataset`` does it once up front and keeps
plain id lists. Lengths come for free, which is what ``BucketBatchSampler`` needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.data.batching import pad_batch
from rnnkit.data.errors import DataError
from rnnkit.data.examples import Example
from rnnkit.data.readers import check_labels
from rnnkit.data.tokenizers import Tokenizer
from rnnkit.data.vocab import Vocabulary


def label_index(labels: Sequence[str] | Mapping[str, int]) -> dict[str, int]:
    """``{label: id}`` from a label list (ids by position) or an existing mapping (checked)."""
    if isinstance(labels, Mapping):
        index = dict(labels)
    else:
        if isinstance(labels, str):
            raise TypeError("labels must be a list of label strings, got a single str")
        index = {label: i for i, label in enumerate(labels)}
        if len(index) != len(labels):
            raise ValueError(f"labels must be unique, got {list(labels)}")
    if not index or sorted(index.values()) != list(range(len(index))):
        raise ValueError(f"label ids must be 0..{len(index) - 1} without gaps, got {index}")
    return index


@dataclass
class EncodedDataset:
    """Token ids (and label ids) for a list of examples.

    Attributes:
        ids: token ids per example, untruncated.
        label_ids: class id per example, or ``None`` for unlabelled data.
        sources: ``Example.source`` per example, to trace predictions back to files.

    Indexing gives ``(ids, label_id)``; ``batch(indices)`` gives padded tensors.
    """

    ids: list[list[int]]
    label_ids: list[int] | None
    sources: list[str]

    @classmethod
    def from_examples(cls, examples: Sequence[Example], tokenizer: Tokenizer, vocab: Vocabulary,
                      labels: Sequence[str] | Mapping[str, int] | None = None) -> EncodedDataset:
        """Tokenize and encode ``examples``.

        Args:
            examples: e.g. ``read_csv(...).examples`` or a bundled split.
            tokenizer: turns each text into tokens.
            vocab: maps tokens to ids (unknown tokens -> ``vocab.unk_id``).
            labels: the class list (id = position) or ``{label: id}``; ``None`` for
                unlabelled data. A label outside it, or a missing label, is a ``DataError``
                naming the example's file and line.
        """
        examples = list(examples)
        if not examples:
            raise ValueError("examples must not be empty")
        index = label_index(labels) if labels is not None else None
        if index is not None:
            check_labels(examples, index)
        ids, label_ids = [], [] if index is not None else None
        for example in examples:
            encoded = vocab.encode(tokenizer.tokenize(example.text))
            if not encoded:
                file, line = example.location()
                raise DataError(file, line, "text", "the tokenizer produced no tokens")
            ids.append(encoded)
            if index is not None:
                if example.label is None:
                    file, line = example.location()
                    raise DataError(file, line, "label", "missing label")
                label_ids.append(index[example.label])
        return cls(ids, label_ids, [ex.source for ex in examples])

    def subset(self, indices: Sequence[int]) -> EncodedDataset:
        """The examples at ``indices``, in that order (no re-tokenizing)."""
        labels = None if self.label_ids is None else [self.label_ids[i] for i in indices]
        return EncodedDataset([self.ids[i] for i in indices], labels, [self.sources[i] for i in indices])

    @property
    def lengths(self) -> list[int]:
        return [len(seq) for seq in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], int | None]:
        return self.ids[i], (self.label_ids[i] if self.label_ids is not None else None)

    def batch(self, indices: Sequence[int], pad_id: int = 0, max_len: int | None = None
              ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(ids (B, T), lengths (B,), label ids (B,) or None)`` for ``indices``, batch-first."""
        x, lengths = pad_batch([self.ids[i] for i in indices], pad_id=pad_id, max_len=max_len)
        y = torch.tensor([self.label_ids[i] for i in indices], dtype=torch.long) if self.label_ids is not None \
            else None
        return x, lengths, y
