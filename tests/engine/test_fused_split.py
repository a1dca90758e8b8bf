"""The fused forward with the hidden units split across threads (tiny batches) equals the reference (float64).

``split`` forces the split for every one-block forward and records the ``chunks`` argument of each forward
kernel call, so every test checks that the split path really ran (the kernel gets ``-parts`` there).
"""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest
import torch

from rnnkit.engine.fused import backend, layout, ops, recurrence

from .conftest import KINDS, assert_same, make_layer, run_all

# (batch, lengths, with_hx): one row; rows that stop early (the unit split keeps bs[t] rows running);
# a single row shorter than the input; five rows (from 4 rows the per-thread product goes to the BLAS).
CASES = [(1, None, True), (3, [6, 2, 4], False), (2, [3, 6], True), (1, [4], False), (5, [6, 1, 3, 5, 2], True)]


@pytest.fixture
def split(monkeypatch):
    """``split(parts)`` forces that many unit threads; returns the list of chunks the forward kernel got."""
    seen: list[int] = []
    real = recurrence._kernels

    def kernels(dtype):
        forward, backward = real(dtype)

        def recorded(*args):
            seen.append(args[-2])
            return forward(*args)

        return recorded, backward

    monkeypatch.setattr(recurrence, "_kernels", kernels)

    def use(parts: int) -> list[int]:
        monkeypatch.setattr(backend, "_unit_threads",
                            lambda layer, batch, itemsize: parts if layout.chunks(batch) == 1 else 1)
        return seen

    return use


def _hx(kind, layers, batch, hidden):
    count = 2 if kind == "lstm" else 1
    return tuple(torch.randn(layers * 2, batch, hidden, dtype=torch.float64) for _ in range(count))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("hidden", [5, 7, 40])
@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("batch,lengths,with_hx", CASES)
def test_split_matches_reference(split, kind, hidden, parts, batch, lengths, with_hx):
    # hidden 5, 7: not divisible by the threads; 40: cut at whole cache lines, blocks of the weight copy that
    # straddle two gates, a last block that is part padding.
    seen = split(parts)
    layer = make_layer(kind, hidden=hidden, layers=2, bidirectional=True)
    x = torch.randn(6, batch, 4, dtype=torch.float64)
    hx = _hx(kind, 2, batch, hidden) if with_hx else None
    fused = run_all(layer, "fused", x, hx, lengths)
    assert seen and all(c == -parts for c in seen)  # training mode: forward with save, then backward
    assert_same(fused, run_all(layer, "reference", x, hx, lengths))


@pytest.mark.parametrize("kind", list(KINDS))
def test_split_inference_float32_matches_torch(split, kind):
    seen = split(2)
    layer = make_layer(kind, input_size=8, hidden=33, layers=2, bidirectional=True).float().eval()
    x = torch.randn(9, 3, 8)
    with torch.no_grad():
        layer.backend = "fused"
        out, states = layer(x, lengths=[9, 4, 7])
        layer.backend = "native"
        expected, expected_states = layer(x, lengths=[9, 4, 7])
    assert seen and all(c == -2 for c in seen)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    for s, e in zip(states if isinstance(states, tuple) else (states,),
                    expected_states if isinstance(expected_states, tuple) else (expected_states,), strict=True):
        torch.testing.assert_close(s, e, atol=1e-5, rtol=1e-4)


def test_unit_threads_rule(two_threads):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    f32 = 4
    lstm = make_layer("lstm", hidden=64)  # 4·64²·4 B = 64 KiB: four shares of 16 KiB, one per thread
    rnn = make_layer("rnn_tanh", hidden=64)  # 16 KiB: one share
    assert backend._unit_threads(lstm, 1, f32) == 2
    assert backend._unit_threads(lstm, 7, f32) == 2
    assert backend._unit_threads(lstm, 8, f32) == 1  # two blocks of rows instead
    assert backend._unit_threads(rnn, 1, f32) == 1
    assert backend._unit_threads(rnn, 1, 8) == 2  # float64: 32 KiB


def test_one_rule_for_the_blocks_steers_the_back_end_and_the_operators(monkeypatch):
    # Both look ``layout.chunks`` up when they run: replacing it there reaches the operators' own layout
    # (a traced graph gives none) and the back end's thread rules alike.
    monkeypatch.setattr(layout, "chunks", lambda batch: 2)
    assert ops._layout(None, None, torch.zeros(3, 5, 1))[1].tolist() == [0, 3, 5]
    assert layout.layout(torch.tensor([3, 1, 2, 3, 2]), 3, 5)[1][1].tolist() == [0, 3, 5]
    small = make_layer("lstm", hidden=8)  # W_hh of 1 KiB: one BLAS thread when the rows are one block
    assert backend._blas_threads(small, 1, 4) == 0  # two blocks of rows: torch's setting


@pytest.mark.parametrize("kind", list(KINDS))
def test_blocks_of_eight_rows_and_more(kind, two_threads):
    # Two blocks of 10 rows: the forward's weight is w_hh itself (float64: through the transposed view).
    layer = make_layer(kind, layers=2, bidirectional=True)
    x = torch.randn(5, 20, 4, dtype=torch.float64)
    lengths = [5, 3, 1, 4, 2] * 4
    assert_same(run_all(layer, "fused", x, None, lengths), run_all(layer, "reference", x, None, lengths))


def _split_layer(kind: str) -> torch.nn.Module:
    layer = make_layer(kind, hidden=64, layers=2, bidirectional=True).eval()
    layer.backend = "fused"
    return layer


def _split_forward(kind: str, batch: int, layer=None) -> torch.Tensor:
    """Inference on the real rule: batch 1 splits W_hh (≥ 96 KiB) across two threads, batch 12 by rows."""
    layer = layer or _split_layer(kind)
    x = torch.linspace(-2, 2, 6 * batch * 4, dtype=torch.float64).view(6, batch, 4)
    with torch.no_grad():
        return layer(x)[0]


def _child(queue, kind):
    # libgomp hangs in a fork's child that starts a team, so the child keeps torch at one thread and forces the
    # kernels' threads: the unit split at batch 1, two blocks of rows at batch 12.
    torch.set_num_threads(1)
    layout.chunks = lambda batch: max(1, min(2, batch // 4))
    backend._unit_threads = lambda layer, batch, itemsize: 2 if batch < 8 else 1
    queue.put([_split_forward(kind, 1).tolist(), _split_forward(kind, 12).tolist()])  # plain data: the child exits


def test_threads_after_fork(two_threads):
    # The kernels run on torch's OpenMP team, which a fork's child cannot start once the parent has used it
    # (libgomp hangs): there they must start threads of their own.
    expected = [_split_forward("lstm", 1), _split_forward("lstm", 12)]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue, "lstm"), daemon=True)
    child.start()
    try:
        got = queue.get(timeout=120)
        child.join(timeout=60)
    finally:
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(torch.tensor(g, dtype=e.dtype), e, atol=1e-12, rtol=1e-10)


def test_concurrent_callers(two_threads):
    # Calls from several Python threads at once, each on its own OpenMP team.
    layers = [_split_layer(kind) for kind in ("gru", "lstm", "gru", "lstm")]  # built here: make_layer seeds
    expected = [_split_forward("", 1, layer) for layer in layers]
    errors: list[Exception] = []

    def work(layer, want):
        try:
            for _ in range(20):
                torch.testing.assert_close(_split_forward("", 1, layer), want, atol=0, rtol=0)
        except Exception as err:  # reported below, in the test's own thread
            errors.append(err)

    workers = [threading.Thread(target=work, args=pair) for pair in zip(layers, expected, strict=True)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors, errors[0]
