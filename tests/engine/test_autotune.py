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


# -- robust on a loaded machine: races on a fake clock, provisional decisions checked again ---------------------


class FakeClock:
    """A clock that only moves when a fake candidate runs: each call takes its next scripted duration (whole
    milliseconds: exact arithmetic)."""

    def __init__(self, durations: dict[str, list[int]]):
        self.now, self.order = 0, []
        self.durations = {name: list(d) for name, d in durations.items()}

    def __call__(self) -> float:
        return self.now

    def calls(self) -> dict:
        def make(name):
            def call():
                script = self.durations[name]
                self.now += script.pop(0) if len(script) > 1 else script[0]  # the last duration repeats
                self.order.append(name)
            return call
        return {name: make(name) for name in self.durations}


def _race(durations: dict[str, list[int]], budget: int = 10_000):
    clock = FakeClock(durations)
    result = timing.race(clock.calls(), clock=clock, budget=budget)
    return result, clock


def test_race_compares_minima_not_means():
    """Preempted samples (90 ms) hide nothing: native's fastest call is the cheaper one although its mean is not."""
    result, _ = _race({"fused": [30, 20, 20, 20, 20], "native": [40, 10, 90, 90, 11]})
    assert result.best == {"fused": 20, "native": 10} and result.complete
    assert autotune.decide(result, "fused", result.complete) == "native"


def test_race_interleaves_and_alternates_the_order():
    _, clock = _race({"a": [1], "b": [1]})
    assert clock.order[:8] == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-ups, then rounds in turn


def test_race_stops_when_one_candidate_clearly_wins():
    result, clock = _race({"fused": [1], "native": [2]})  # 2× slower: beyond DROP after MIN_ROUNDS
    assert timing.DROP < 2 and len(clock.order) == 2 + 2 * timing.MIN_ROUNDS
    assert result.complete and autotune.decide(result, "native", True) == "fused"


def test_race_of_equals_runs_its_rounds_and_keeps_the_static_choice():
    result, clock = _race({"fused": [1], "native": [1]})
    assert len(clock.order) == 2 + 2 * timing.MAX_ROUNDS and result.samples == {"fused": 10, "native": 10}
    assert autotune.decide(result, "native", True) == "native"


def test_a_far_slower_warm_up_is_not_timed_again():
    result, clock = _race({"fused": [1], "native": [5]})  # 5× at warm-up: beyond WARM_DROP
    assert clock.order.count("native") == 1 and result.samples["native"] == 0 and result.complete
    assert autotune.decide(result, "native", True) == "fused"


def test_race_stays_within_its_budget_and_falls_back_to_the_static_rule():
    """Calls of 30 and 20 ms against a 70 ms budget: both warm up, no timed call fits; the static rule decides."""
    result, clock = _race({"fused": [30], "native": [20]}, budget=70)
    assert clock.now <= 70 and not result.complete and result.samples == {"fused": 0, "native": 0}
    assert autotune.decide(result, "fused", result.complete) == "fused"


def test_race_cut_short_decides_on_minima_when_each_candidate_was_timed():
    result, clock = _race({"fused": [10], "native": [20]}, budget=75)
    assert not result.complete and min(result.samples.values()) >= 1 and clock.now <= 75
    assert autotune.decide(result, "native", result.complete) == "fused"


def test_one_call_longer_than_the_budget_is_the_only_overrun():
    result, clock = _race({"fused": [500], "native": [500]}, budget=80)
    assert clock.order == ["fused"] and not result.complete  # the second warm-up would overrun again


@pytest.fixture
def scripted(monkeypatch):
    """``measure`` replaced by a script of races (one Timing per call); the machine's load set by the test."""
    state = {"busy": False, "races": [], "calls": 0}

    def fake(backends, layer, x, lengths, train):
        state["calls"] += 1
        best, complete = state["races"].pop(0) if len(state["races"]) > 1 else state["races"][0]
        return Timing({n: ms / 1e3 for n, ms in best.items()}, {n: 2 for n in best}, complete)

    monkeypatch.setattr(autotune, "measure", fake)
    monkeypatch.setattr(autotune, "busy", lambda: state["busy"])
    return state


def _entry():
    (entry,) = autotune.table().values()
    return entry


def test_decision_under_load_is_checked_again_by_a_later_process(scripted):
    """Under load native looked faster; the next process, quiet, finds fused faster: the minima over both
    checks decide, and the decision is settled (not timed again)."""
    layer, x = _lstm()
    scripted.update(busy=True, races=[({"fused": 9.0, "native": 4.0}, True), ({"fused": 2.0, "native": 5.0}, True)])
    assert _chosen(layer, x) == "native" and not _entry()["settled"]
    assert _chosen(layer, x) == "native" and scripted["calls"] == 1  # same process, not yet due
    autotune.forget()  # a later process
    scripted["busy"] = False
    assert _chosen(layer, x) == "fused" and scripted["calls"] == 2
    entry = _entry()
    assert entry["settled"] and entry["checks"] == 2 and entry["ms"] == {"fused": 2.0, "native": 4.0}
    autotune.forget()
    assert _chosen(layer, x) == "fused" and scripted["calls"] == 2


def test_provisional_decision_is_checked_again_within_a_process_when_due(scripted, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(autotune, "_now", lambda: now[0])
    layer, x = _lstm()
    scripted.update(busy=True, races=[({"fused": 9.0, "native": 4.0}, True), ({"fused": 2.0, "native": 5.0}, True)])
    assert _chosen(layer, x) == "native"
    now[0] += autotune.RECHECK_AFTER_S - 1
    assert _chosen(layer, x) == "native" and scripted["calls"] == 1
    now[0] += 1
    scripted["busy"] = False
    assert _chosen(layer, x) == "fused" and scripted["calls"] == 2
    now[0] += 10 * autotune.RECHECK_AFTER_S  # settled: never again
    assert _chosen(layer, x) == "fused" and scripted["calls"] == 2


def test_checks_again_a_limited_number_of_times(scripted):
    layer, x = _lstm()
    scripted["races"] = [({"fused": 9.0, "native": 4.0}, False)]  # every race cut by the budget
    for _ in range(autotune.RECHECKS + 3):
        autotune.forget()
        assert _chosen(layer, x) == "native"
    assert scripted["calls"] == 1 + autotune.RECHECKS and _entry()["settled"]


def test_no_check_while_the_machine_is_busy(scripted, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(autotune, "_now", lambda: now[0])
    layer, x = _lstm()
    scripted.update(busy=True, races=[({"fused": 9.0, "native": 4.0}, True), ({"fused": 2.0, "native": 5.0}, True)])
    for _ in range(3):
        autotune.forget()
        now[0] += 2 * autotune.RECHECK_AFTER_S
        assert _chosen(layer, x) == "native"
    assert scripted["calls"] == 1 and _entry()["checks"] == 1
    scripted["busy"] = False
    now[0] += 2 * autotune.RECHECK_AFTER_S
    assert _chosen(layer, x) == "fused" and scripted["calls"] == 2


def test_race_cut_by_the_budget_is_provisional_even_when_quiet(scripted):
    layer, x = _lstm()
    scripted["races"] = [({"fused": 9.0, "native": 4.0}, False), ({"fused": 3.0, "native": 4.0}, True)]
    assert _chosen(layer, x) == "native" and not _entry()["settled"]
    autotune.forget()
    assert _chosen(layer, x) == "fused" and _entry()["settled"]


def test_all_lengths_full_is_the_dense_kind(timed):
    calls = timed({"fused": 3.0, "native": 1.0})
    layer, x = _lstm()
    assert _chosen(layer, x, torch.full((16,), 5)) == "native"
    assert _chosen(layer, x) == "native" and len(calls) == 1
    (key,) = autotune.table()
    assert key.endswith("| dense")


def test_engine_report_marks_a_provisional_decision(scripted, capsys):
    from rnnkit.cli.main import main

    layer, x = _lstm()
    scripted.update(busy=True, races=[({"fused": 9.0, "native": 4.0}, True)])
    assert _chosen(layer, x) == "native"
    assert main(["engine-report"]) == 0
    assert "-> native (static rule: fused) (provisional after 1 check(s)" in capsys.readouterr().out
