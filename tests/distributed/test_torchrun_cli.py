"""``torchrun --nproc-per-node 2 -m rnnkit train|train-lm``: end to end, rank 0 alone writes and prints (slow:
three interpreters start)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipelines.conftest import make_texts

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*TORCHRUN, "-m", "rnnkit", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _one_summary(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"expected rank 0's summary only, got {lines}"
    return json.loads(lines[0])


def test_torchrun_train_lm(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(" ".join(t for _, t in make_texts(400, 0))), encoding="utf-8")
    done = _run(["train-lm", "--data", str(text), "--out", "run", "--hidden-size", "16", "--embedding-dim", "8",
                 "--num-layers", "1", "--batch-size", "8", "--bptt", "32", "--max-steps", "20", "--eval-every", "10",
                 "--max-time", "None", "--epochs", "1"], tmp_path)
    summary = _one_summary(done.stdout)
    assert summary["steps"] == 20
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [10, 20]  # one writer
    assert done.stderr.count("corpus t.txt:") == 1
    assert (tmp_path / "run" / "model" / "config.json").exists()


def test_torchrun_train_classifier(tmp_path):
    rows = make_texts(300, 0)
    (tmp_path / "train.csv").write_text("label,text\n" + "\n".join(f"{a},{b}" for a, b in rows), encoding="utf-8")
    done = _run(["train", "--data", "train.csv", "--out", "run", "--hidden-size", "16", "--embedding-dim", "16",
                 "--embeddings", "random", "--epochs", "2", "--batch-size", "16"], tmp_path)
    summary = _one_summary(done.stdout)
    assert summary["valid_accuracy"] is not None
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "run" / "model" / "config.json").exists()


def _lm_args(text: Path, out: str) -> list[str]:
    # Enough steps that SIGTERM, sent as soon as the first checkpoint exists, lands well before the end.
    return ["train-lm", "--data", str(text), "--out", out, "--hidden-size", "16", "--embedding-dim", "8",
            "--num-layers", "1", "--batch-size", "8", "--bptt", "16", "--max-steps", "600", "--eval-every", "100",
            "--max-time", "None", "--epochs", "50", "--dropout", "0.2", "--checkpoint-every", "10"]


def test_torchrun_train_lm_stopped_by_sigterm_resumes_to_the_same_run(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(" ".join(t for _, t in make_texts(400, 0))), encoding="utf-8")
    whole = _run(_lm_args(text, "whole"), tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # torchrun forwards SIGTERM to both workers; they stop at one step, rank 0 saves, the run folder is kept.
    launcher = subprocess.Popen([*TORCHRUN, "-m", "rnnkit", *_lm_args(text, "run")], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob(".run.staging-*/resume/state.pt")) and launcher.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    launcher.send_signal(signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=240)
    assert launcher.returncode != 0 and "interrupted at step" in stderr, stderr[-3000:]
    assert not (tmp_path / "run").exists()
    assert len(list(tmp_path.glob(".run.staging-*"))) == 1  # rank 1 created no folder of its own

    resumed = _run(["train-lm", "--resume", "run"], tmp_path)
    assert _one_summary(resumed.stdout)["steps"] == _one_summary(whole.stdout)["steps"] == 600
    assert not list(tmp_path.glob(".run.staging-*"))
    logs = [[json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
            for name in ("whole", "run")]
    figures = [[(r["step"], r["train_loss"], r["valid_bits_per_char"]) for r in log] for log in logs]
    assert figures[1] == figures[0]


def test_torchrun_resume_of_a_one_process_run_is_one_line_from_rank_0(tmp_path, monkeypatch, capsys):
    import random

    from rnnkit.cli.main import main
    from tests.robustness.run_data import signal_during_step, write_labelled_csv

    data = write_labelled_csv(tmp_path / "train.csv", 64, random.Random(0))
    signal_during_step(monkeypatch, call=3)
    args = ["train", "--data", data, "--out", str(tmp_path / "run"), "--epochs", "1", "--embedding-dim", "8",
            "--hidden-size", "8", "--embeddings", "random", "--batch-size", "16", "--min-freq", "1", "--no-progress",
            "--checkpoint-every", "1"]
    assert main(args) == 128 + signal.SIGTERM
    monkeypatch.undo()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*TORCHRUN, "-m", "rnnkit", "train", "--resume", str(tmp_path / "run"), "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("rnnkit train")]  # torchrun: "rnnkit FAILED"
    assert len(ours) == 1 and "trained by 1 process(es), this is 2" in ours[0], done.stderr[-3000:]
    assert not any(line.startswith("data ") for line in done.stderr.splitlines())  # refused before the data is read
