"""Start the two worker processes of a test (``jobs.py`` with torchrun's variables) and collect their results."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two(jobs: dict, folder: Path, timeout_s: float) -> list[dict]:
    """Each rank's results of every job in ``jobs``, from one launch of two processes (killed after ``timeout_s``)."""
    spec = folder / "jobs.json"
    spec.write_text(json.dumps(jobs))
    port = _free_port()
    workers = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        workers.append(subprocess.Popen([sys.executable, "-m", "tests.distributed.jobs", str(spec), str(folder)],
                                        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout_s
    outputs = []
    try:
        for worker in workers:
            out, _ = worker.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs.append(out.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the two-process run did not finish in {timeout_s} s (a rank is waiting in a collective)")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for rank, worker in enumerate(workers):
        assert worker.returncode == 0, f"rank {rank} failed:\n{outputs[rank][-3000:]}"
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]
