"""``rnnkit engine-report``: the machine, the kernels' provenance and the recorded auto decisions."""

from __future__ import annotations

import json

import rnnkit
from rnnkit.cli.main import main
from rnnkit.engine import autotune, cache


def test_report_prints_machine_kernels_and_decisions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("RNNKIT_AUTOTUNE", "1")
    autotune.forget()
    import torch

    layer, x = rnnkit.GRU(4, 8), torch.randn(5, 16, 4)
    key = autotune.machine_key()
    decision = autotune.decision_key(layer, x, None, True)
    doc = {"format": autotune.FORMAT, "machine": key, "decisions": {
        decision: {"backend": "native", "static": "fused", "ms": {"fused": 2.0, "native": 1.5}, "timed_steps": 5}}}
    cache.write(autotune.file_name(key), json.dumps(doc).encode())
    assert main(["engine-report"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("CPU ") and lines[1].startswith("flags ") and lines[2].startswith("caches ")
    assert "fused    loaded" in out or "fused    built" in out
    assert f"decisions for {key} (this machine and thread count)" in out
    assert "-> native (static rule: fused)  [fused 2 ms, native 1.5 ms; 5 steps]" in out
    assert decision in out

    assert main(["engine-report", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decisions"] == [doc] and report["machine"]["key"] == key and report["autotune"] is True
    autotune.forget()


def test_report_without_decisions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("RNNKIT_AUTOTUNE", "0")
    assert main(["engine-report"]) == 0
    out = capsys.readouterr().out
    assert "static rules (RNNKIT_AUTOTUNE=0)" in out and "no decisions recorded yet" in out


def test_report_skips_entries_the_tuner_would_not_use(tmp_path, monkeypatch, capsys):
    # The report reads decision files as autotune does: an entry without a back end is dropped, not a KeyError.
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("RNNKIT_AUTOTUNE", "1")
    key = autotune.machine_key()
    doc = {"format": autotune.FORMAT, "machine": key, "decisions": {
        "good": {"backend": "native", "ms": {"native": 1.0}}, "broken": {"ms": {"fused": 1.0}}, "odd": 3}}
    cache.write(autotune.file_name(key), json.dumps(doc).encode())
    assert main(["engine-report"]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "-> native" in out and "broken" not in out and "odd" not in out
    assert autotune._read_file(key) == {"good": {"backend": "native", "ms": {"native": 1.0}}}
