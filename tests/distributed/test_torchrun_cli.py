"""``torchrun --nproc-per-node 2 -m rnnkit train|train-lm``: end to end, rank 0 alone writes and prints (slow:
three interpreters start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
