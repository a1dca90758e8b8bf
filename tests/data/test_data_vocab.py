"""Vocabulary: deterministic ids, min_freq, max_size, specials, encode/decode, round trip."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from rnnkit.data import Vocabulary

DOCS = [["b", "a", "c"], ["a", "b", "d"], ["a", "<unk>"]]


def test_order_by_frequency_then_token_and_specials_first():
    vocab = Vocabulary.build(DOCS)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert (vocab.pad_id, vocab.unk_id, vocab.special_ids) == (0, 1, (0, 1))
    assert (vocab.pad_token, vocab.unk_token) == ("<pad>", "<unk>")
    # The order does not depend on the input order, nor on lists vs a Counter.
    assert Vocabulary.build(list(reversed(DOCS))) == vocab
    assert Vocabulary.build(Counter(t for d in DOCS for t in d)) == vocab


def test_min_freq_max_size_and_custom_specials():
    assert Vocabulary.build(DOCS, min_freq=2).tokens == ["<pad>", "<unk>", "a", "b"]
    assert Vocabulary.build(DOCS, max_size=3).tokens == ["<pad>", "<unk>", "a"]
    vocab = Vocabulary.build(DOCS, specials=("<pad>", "<unk>", "<bos>", "<eos>"))
    assert vocab.tokens[:5] == ["<pad>", "<unk>", "<bos>", "<eos>", "a"]
    assert vocab.special_ids == (0, 1, 2, 3) and len(vocab) == 8


def test_encode_decode_and_unknowns():
    vocab = Vocabulary.build(DOCS, min_freq=2)
    ids = vocab.encode(["a", "zzz", "b"])
    assert ids == [2, vocab.unk_id, 3]
    assert vocab.decode(ids) == ["a", "<unk>", "b"]
    assert vocab.decode(torch.tensor([3, 0])) == ["b", "<pad>"]
    assert vocab.unknown_rate([["a", "zzz"], ["c", "b"]]) == 0.5
    assert "a" in vocab and "zzz" not in vocab


def test_round_trip_through_json():
    vocab = Vocabulary.build(DOCS, specials=("<pad>", "<unk>", "<eos>"))
    again = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again == vocab and again.encode(["d", "q"]) == vocab.encode(["d", "q"])


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="min_freq must be a positive integer, got 0"):
        Vocabulary.build(DOCS, min_freq=0)
    with pytest.raises(ValueError, match="max_size must be None or an int >= len\\(specials\\)=2, got 1"):
        Vocabulary.build(DOCS, max_size=1)
    with pytest.raises(ValueError, match="specials must hold at least padding and unknown"):
        Vocabulary.build(DOCS, specials=("<pad>",))
    with pytest.raises(TypeError, match=r"token_lists_or_counter\[0\] must be a list of str tokens, got str"):
        Vocabulary.build(["not tokenized"])
    with pytest.raises(TypeError, match="got a str"):
        Vocabulary.build(DOCS).encode("abc")
    with pytest.raises(ValueError, match=r"ids\[1\] = 99 is outside the vocabulary \(size 6\)"):
        Vocabulary.build(DOCS).decode([0, 99])
    with pytest.raises(ValueError, match="tokens must be unique"):
        Vocabulary(["<pad>", "<unk>", "a", "a"])
    with pytest.raises(ValueError, match="keys 'tokens' and 'num_specials'"):
        Vocabulary.from_dict({"tokens": ["<pad>", "<unk>"]})
