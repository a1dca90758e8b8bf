"""Sampling rules (greedy, top-k, top-p, banned ids) and reproducible generation with a seed and a stop string."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data import CharTokenizer, Vocabulary
from rnnkit.generation import SamplingConfig, filter_logits, generate_pieces, sample_next
from tests.helpers import SONNET, tiny_lm_net


def test_top_k_one_equals_greedy():
    logits = torch.randn(5, 40)
    greedy = sample_next(logits, SamplingConfig(temperature=0))
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        sampled = sample_next(logits, SamplingConfig(temperature=1.3, top_k=1), generator=g)
        assert torch.equal(sampled, greedy)


@pytest.mark.parametrize("top_p", [1e-300, 1e-46, 5e-324, 1e-30])
def test_a_vanishing_top_p_keeps_the_top_token(top_p):
    """top_p below float32's smallest number rounds to 0 against the probabilities: the top token still stays,
    so every setting samples (as greedy would) instead of finding no token left."""
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(0)) * 3
    banned = torch.tensor([0, 1])
    greedy = sample_next(logits, SamplingConfig(temperature=0), banned)
    for temperature in (0, 0.7, 2.0):
        config = SamplingConfig(temperature=temperature, top_p=top_p)
        kept = torch.isfinite(filter_logits(logits, config, banned))
        assert kept.sum(1).tolist() == [1] * 4 and kept[torch.arange(4), greedy].all()
        assert torch.equal(sample_next(logits, config, banned, torch.Generator().manual_seed(1)), greedy)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 3.0), st.one_of(st.none(), st.integers(1, 20)),
       st.one_of(st.none(), st.floats(0.05, 1.0)))
def test_special_ids_are_never_sampled(seed, temperature, top_k, top_p):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(8, 20, generator=g) * 5
    logits[:, :2] += 50  # make the banned ids by far the most likely
    banned = torch.tensor([0, 1])
    config = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    ids = sample_next(logits, config, banned, generator=g)
    assert not bool(((ids == 0) | (ids == 1)).any())
    assert torch.isinf(filter_logits(logits, config, banned)[:, :2]).all()


def test_fixed_seed_reproduces_a_sample_and_stop_string():
    tokenizer = CharTokenizer()
    vocab = Vocabulary.build([tokenizer.tokenize(SONNET)])
    model = tiny_lm_net(vocab_size=len(vocab)).float()
    a = "".join(generate_pieces(model, tokenizer, vocab, "Thou", 60, SamplingConfig(temperature=1.0), seed=7))
    b = "".join(generate_pieces(model, tokenizer, vocab, "Thou", 60, SamplingConfig(temperature=1.0), seed=7))
    c = "".join(generate_pieces(model, tokenizer, vocab, "Thou", 60, SamplingConfig(temperature=1.0), seed=8))
    assert a == b and a != c and len(a) == 60
    stop = a[20:22]
    cut = "".join(generate_pieces(model, tokenizer, vocab, "Thou", 60, SamplingConfig(temperature=1.0),
                                  stop=stop, seed=7))
    assert cut == a[: a.index(stop)]
