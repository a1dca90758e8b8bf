"""``backend="auto"`` with the tuner on: decisions read from the cache are followed exactly, new kinds are timed
once and recorded, and timing leaves the caller's gradients, graph and random state alone. Nothing here
depends on which back end is faster: timings are forced where a choice is asserted."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

import rnnkit
from rnnkit.engine import autotune, cache, timing
from rnnkit.engine.registry import resolve_backend
from rnnkit.engine.timing import Timing


@pytest.fixture(autouse=True)
def tuner(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RNNKIT_AUTOTUNE", "1")
    monkeypatch.setattr(autotune, "busy", lambda: False)  # a quiet machine unless a test says otherwise
    autotune.forget()
    yield
    autotune.forget()


@pytest.fixture
def timed(monkeypatch):
    """``measure`` replaced by a complete race with fixed times (ms per back end); records each call."""
    calls = []

    def install(ms: dict):
        def fake(backends, layer, x, lengths, train):
            calls.append(sorted(b.name for b in backends))
            return Timing({b.name: ms[b.name] / 1e3 for b in backends}, {b.name: timing.MIN_ROUNDS for b in backends})

        monkeypatch.setattr(autotune, "measure", fake)
        return calls

    return install


def _lstm(batch=16):
    layer = rnnkit.LSTM(4, 8)
    return layer, torch.randn(5, batch, 4)


def _force(layer, x, lengths, train, backend):
    key = autotune.machine_key()
    doc = {"format": autotune.FORMAT, "machine": key,
           "decisions": {autotune.decision_key(layer, x, lengths, train): {"backend": backend}}}
    cache.write(autotune.file_name(key), json.dumps(doc).encode())
    autotune.forget()  # as a new process would: read the file again


def _chosen(layer, x, lengths=None):
    return resolve_backend("auto", layer, x, lengths).name


@pytest.mark.parametrize("backend", ["fused", "native"])
def test_cached_decision_is_followed(backend):
    layer, x = _lstm()
    with torch.no_grad():
        _force(layer.eval(), x, None, False, backend)
        assert _chosen(layer, x) == backend
    _force(layer.train(), x, None, True, backend)
    assert _chosen(layer, x) == backend


def test_autotune_off_follows_the_static_rules(monkeypatch, timed):
    calls = timed({"fused": 1.0, "native": 2.0})
    layer, x = _lstm()
    with torch.no_grad():
        _force(layer.eval(), x, None, False, "fused")
        monkeypatch.setenv("RNNKIT_AUTOTUNE", "0")
        assert _chosen(layer, x) == "native"  # static: oneDNN's LSTM inference at 16 rows
    assert calls == []


def test_new_kind_is_timed_once_and_recorded(timed):
    calls = timed({"fused": 3.0, "native": 1.0})
    layer, x = _lstm(batch=2)
    assert _chosen(layer, x) == "native"
    assert _chosen(layer, torch.randn(9, 3, 4)) == "native"  # same batch class (2-3), other length: no timing
    assert calls == [["fused", "native"]]
    path = cache.directory() / autotune.file_name(autotune.machine_key())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.loads(path.read_text())
    (key, entry), = doc["decisions"].items()
    assert "LSTMCell | train | batch 2-3 | steps 2-15 | hidden 8 | layers 1 | dirs 1 | float32" in key
    assert entry["backend"] == "native" and entry["static"] == "fused" and entry["ms"] == {"fused": 3.0, "native": 1.0}
    autotune.forget()  # another process: reads the file, times nothing
    assert _chosen(layer, x) == "native" and len(calls) == 1


def test_static_choice_kept_within_the_tie_margin(timed):
    timed({"fused": 1.02, "native": 1.0})  # fused is the static choice for LSTM training
    layer, x = _lstm()
    assert _chosen(layer, x) == "fused"


@pytest.mark.parametrize("content", [b"{not json", b'{"format": 1, "machine": "another machine", "decisions": {}}',
                                     b'{"format": 99}', b"[]"])
def test_unusable_cache_content_is_timed_afresh(timed, content):
    calls = timed({"fused": 3.0, "native": 1.0})
    layer, x = _lstm()
    cache.write(autotune.file_name(autotune.machine_key()), content)
    assert _chosen(layer, x) == "native" and len(calls) == 1


def test_cache_file_writable_by_others_is_ignored(timed):
    calls = timed({"fused": 3.0, "native": 1.0})
    layer, x = _lstm()
    _force(layer, x, None, True, "fused")
    os.chmod(cache.directory() / autotune.file_name(autotune.machine_key()), 0o666)
    assert _chosen(layer, x) == "native" and len(calls) == 1


def test_decision_for_a_back_end_that_cannot_run_falls_back_to_static(timed):
    calls = timed({})
    layer, x = _lstm()
    _force(layer, x, None, True, "no-such-backend")
    assert _chosen(layer, x) == "fused" and calls == []


def test_one_tunable_candidate_is_not_timed(timed):
    calls = timed({})
    layer = rnnkit.GRU(4, 8, layer_norm=True)  # fused or reference; the reference is never timed
    assert _chosen(layer, torch.randn(5, 3, 4)) == "fused" and calls == []


def test_key_names_every_dimension():
    layer = rnnkit.GRU(4, 8, 2, bidirectional=True, zoneout=0.1).double()
    x = torch.randn(5, 40, 4, dtype=torch.float64)
    key = autotune.decision_key(layer, x, torch.full((40,), 5), train=False)
    assert key == (f"GRUCell(zoneout=0.1) | infer | batch 32-63 | steps 2-15 | hidden 8 | layers 2 | dirs 2 | "
                   f"float64 | threads {torch.get_num_threads()} | lengths")
    assert [autotune.batch_class(b) for b in (1, 2, 3, 4, 7, 8, 64, 127)] == \
        ["1", "2-3", "2-3", "4-7", "4-7", "8-15", "64-127", "64-127"]
    assert [autotune.steps_class(t) for t in (1, 2, 15, 16, 400)] == ["1", "2-15", "2-15", "16+", "16+"]


def test_one_step_calls_are_their_own_kind(timed):
    """Generation calls one step at a time: per-call cost ranks the back ends there, not the per-step cost."""
    calls = timed({"fused": 3.0, "native": 1.0})
    layer = rnnkit.LSTM(4, 8)
    with torch.no_grad():
        assert _chosen(layer, torch.randn(1, 1, 4)) == "native"
    calls_after_one_step = len(calls)
    timed({"fused": 1.0, "native": 3.0})
    with torch.no_grad():
        assert _chosen(layer, torch.randn(20, 1, 4)) == "fused"  # same batch class, 20 steps: timed anew
        assert _chosen(layer, torch.randn(1, 1, 4)) == "native"  # the one-step decision is kept
    assert calls_after_one_step == 1 and len(calls) == 2


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_real_timing_inside_a_training_step_leaves_no_trace(kind):
    """The first call of a kind is timed (for real) while the caller's graph is being built: the caller's
    outputs, gradients and random state equal those of a run with the tuner off, and no ``.grad`` is written
    by the timing."""
    cls = rnnkit.LSTM if kind == "lstm" else rnnkit.GRU
    torch.manual_seed(0)
    layer = cls(4, 8, 2, dropout=0.5).double()  # dropout between layers: timing draws masks
    x = torch.randn(40, 6, 4, dtype=torch.float64)
    lengths = torch.tensor([40, 3, 17, 40, 9, 1])

    def step():
        torch.manual_seed(5)
        scale = torch.randn((), dtype=torch.float64, requires_grad=True)
        out, _ = layer(x * scale, lengths=lengths)
        assert all(p.grad is None for p in layer.parameters())
        loss = out.square().sum()
        loss.backward()
        grads = [p.grad.clone() for p in layer.parameters()] + [scale.grad]
        layer.zero_grad(set_to_none=True)
        return out.detach(), grads, torch.rand(3)

    os.environ["RNNKIT_AUTOTUNE"] = "0"
    expect = step()
    os.environ["RNNKIT_AUTOTUNE"] = "1"
    got = step()
    assert autotune.spent()["tunings"] >= 1 and len(autotune.table()) == 1
    torch.testing.assert_close(got[0], expect[0], atol=1e-10, rtol=1e-8)
    for g, e in zip(got[1], expect[1], strict=True):
        torch.testing.assert_close(g, e, atol=1e-9, rtol=1e-7)
    assert torch.equal(got[2], expect[2])  # the random stream continues where it would have


@pytest.mark.parametrize("reentrant", [False, True])
def test_timing_inside_activation_checkpointing(reentrant):
    """Checkpointing recomputes the forward and counts the tensors it saves: the first (timed) call's timing
    must not add to them."""
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(0)
    layer = rnnkit.GRU(4, 8, 2).double()
    x = torch.randn(20, 5, 4, dtype=torch.float64, requires_grad=True)
    loss = checkpoint(lambda x: layer(x)[0].square().sum(), x, use_reentrant=reentrant)
    loss.backward()
    assert autotune.spent()["tunings"] >= 1 or not reentrant  # the reentrant forward runs without a graph
    expect = torch.autograd.grad(layer(x)[0].square().sum(), x)[0]
    torch.testing.assert_close(x.grad, expect, atol=1e-10, rtol=1e-8)


def test_cache_directory_removed_while_running(timed):
    import shutil

    calls = timed({"fused": 3.0, "native": 1.0})
    layer, x = _lstm()
    assert _chosen(layer, x) == "native"
    shutil.rmtree(cache.directory())
    autotune.forget()
    assert _chosen(layer, x) == "native" and len(calls) == 2  # timed again, recorded in a new directory
    assert (cache.directory() / autotune.file_name(autotune.machine_key())).exists()
