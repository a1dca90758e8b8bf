"""StreamBatcher: coverage of every input position once per epoch, order, targets, random lengths."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data import StreamBatcher


def collect(batcher: StreamBatcher):
    xs, ys = zip(*batcher, strict=True)
    return torch.cat(xs, dim=1), torch.cat(ys, dim=1), [x.shape[1] for x in xs]


def test_layout_and_tail_drop():
    ids = torch.arange(23)
    batcher = StreamBatcher(ids, batch_size=3, bptt=3)
    assert batcher.stream_length == 7 and batcher.num_tokens == 21 and batcher.dropped_tokens == 2
    assert batcher.num_targets == 18
    windows = list(batcher)
    assert [x.shape for x, _ in windows] == [(3, 3), (3, 3)]
    x0, y0 = windows[0]
    assert x0.tolist() == [[0, 1, 2], [7, 8, 9], [14, 15, 16]]
    assert y0.tolist() == [[1, 2, 3], [8, 9, 10], [15, 16, 17]]
    assert windows[1][0][:, 0].tolist() == [3, 10, 17]  # the next window continues each stream
    assert len(batcher) == 2


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), batch_size=st.integers(1, 8), bptt=st.integers(1, 40),
       random_length=st.booleans(), seed=st.integers(0, 3), epoch=st.integers(0, 3))
def test_every_input_position_once_in_order(n, batch_size, bptt, random_length, seed, epoch):
    if n // batch_size < 2:
        with pytest.raises(ValueError, match="too few for batch_size"):
            StreamBatcher(torch.arange(n), batch_size, bptt)
        return
    batcher = StreamBatcher(torch.arange(n), batch_size, bptt, random_length=random_length, seed=seed)
    batcher.set_epoch(epoch)
    x, y, lengths = collect(batcher)
    length = n // batch_size
    streams = torch.arange(length * batch_size).view(batch_size, length)
    # Concatenating the windows in order rebuilds every stream's inputs (0..L-2) exactly once.
    assert torch.equal(x, streams[:, :-1])
    assert torch.equal(y, streams[:, 1:])
    assert sum(lengths) == length - 1 == batcher.num_targets // batch_size
    assert len(batcher) == len(lengths)
    if not random_length:
        assert all(t == bptt for t in lengths[:-1]) and 0 < lengths[-1] <= bptt
    else:
        assert all(t >= min(5, bptt) for t in lengths[:-1]) and lengths[-1] > 0


def test_random_lengths_vary_and_are_deterministic():
    ids = torch.arange(20_000)
    a = StreamBatcher(ids, 4, 70, random_length=True, seed=1)
    lengths = a.window_lengths()
    assert len(set(lengths)) > 10  # they vary ...
    assert 60 < sum(lengths) / len(lengths) < 72  # ... around bptt (5% of windows aim at bptt / 2)
    assert StreamBatcher(ids, 4, 70, random_length=True, seed=1).window_lengths() == lengths
    a.set_epoch(1)
    assert a.window_lengths() != lengths


def test_argument_checks():
    with pytest.raises(TypeError, match="ids must be a 1-D integer tensor, got \\(2, 2\\)"):
        StreamBatcher(torch.zeros(2, 2, dtype=torch.long), 1, 2)
    with pytest.raises(TypeError, match="ids must be a 1-D integer tensor, got list"):
        StreamBatcher([1, 2, 3], 1, 2)
    with pytest.raises(ValueError, match="bptt must be a positive integer, got 0"):
        StreamBatcher(torch.arange(10), 1, 0)
    with pytest.raises(ValueError, match="ids has 5 tokens, too few for batch_size=3"):
        StreamBatcher(torch.arange(5), 3, 2)


def test_stream_windows_cover_training_text_once_in_order():
    ids = torch.arange(1000)
    batcher = StreamBatcher(ids, batch_size=4, bptt=13)
    xs = torch.cat([x for x, _ in batcher], dim=1)
    assert torch.equal(xs, ids.view(4, 250)[:, :-1])
