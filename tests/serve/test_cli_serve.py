"""The `rnnkit serve` and `rnnkit inspect` verbs: a real server process, its shutdown, the inspect files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from rnnkit.cli.main import main


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", *args, "--port", "0", "--log-level", "warning"],
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return proc, f"http://127.0.0.1:{found.group(1)}"
    proc.kill()
    raise AssertionError("the server did not start:\n" + "".join(lines))


def test_sigterm_lets_a_running_stream_finish(classifier_dir, lm_dir):
    proc, url = start_server(str(classifier_dir), f"bard={lm_dir}")
    try:
        assert [m["name"] for m in httpx.get(f"{url}/v1/models").json()["models"]] == ["news", "bard"]
        events = []
        with httpx.stream("POST", f"{url}/v1/generate", json={"prompt": "Thou", "max_tokens": 500, "seed": 2},
                          timeout=60) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("event: token"):
                    proc.send_signal(signal.SIGTERM)  # mid-stream: the sample must still arrive whole
                    break
            events = [line for line in lines if line.startswith("data: ")]
        done = json.loads(events[-1][len("data: "):])
        assert done["finish_reason"] == "length" and done["tokens"] == 500
        # uvicorn re-raises the signal once it has shut down, so the exit status says "ended by SIGTERM".
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stderr.read()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def _pids(url: str, connections: int = 32) -> set[int]:
    """Which worker processes answer /healthz over this many new, concurrent connections."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        return httpx.get(f"{url}/healthz", headers={"connection": "close"}, timeout=30).json()["pid"]

    with ThreadPoolExecutor(connections) as pool:
        return set(pool.map(one, range(connections)))


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("PPid:")).split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads worker parents from /proc")
def test_two_workers_share_requests_replace_a_dead_one_and_drain_on_sigterm(classifier_dir, lm_dir):
    proc, url = start_server(str(classifier_dir), f"bard={lm_dir}", "--workers", "2")
    try:
        reply = httpx.post(f"{url}/v1/classify", json={"texts": ["the striker scored a goal"]}, timeout=30)
        assert reply.status_code == 200 and reply.json()["results"][0]["labels"][0]["label"] == "sport"
        pids = set()
        for _ in range(5):  # which worker accepts a connection is the kernel's choice: a few tries
            pids |= _pids(url)
            if len(pids) == 2:
                break
        assert len(pids) == 2 and all(_parent_of(pid) == proc.pid for pid in pids), pids
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)  # a worker that dies is reported and replaced, not silently lost
        assert "died" in proc.stderr.readline()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(now := _pids(url, 8) - {victim}) < 2:
            time.sleep(0.5)
        assert len(now) == 2 and victim not in now
        with httpx.stream("POST", f"{url}/v1/generate", json={"prompt": "Thou", "max_tokens": 500, "seed": 2},
                          timeout=60) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("event: token"):
                    proc.send_signal(signal.SIGTERM)  # to the parent: every worker drains, this stream finishes
                    break
            events = [line for line in lines if line.startswith("data: ")]
        done = json.loads(events[-1][len("data: "):])
        assert done["finish_reason"] == "length" and done["tokens"] == 500
        assert proc.wait(timeout=60) == 0
        assert "Traceback" not in proc.stderr.read()
        for pid in now:
            assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def test_serve_rejects_what_it_cannot_serve(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing"), "--port", "0"]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--max-batch", "0", "--port", "0"]) == 2
    assert "max_batch must be a positive integer" in capsys.readouterr().err


def test_inspect_writes_png_and_self_contained_html(classifier_dir, lm_dir, tmp_path, capsys):
    out = tmp_path / "lm"
    assert main(["inspect", str(lm_dir), "Thou art more", "--out", str(out), "--unit", "3", "--json"]) == 0
    printed = capsys.readouterr().out
    assert "13 tokens" in printed and "next token" in printed
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    html = out.with_suffix(".html").read_text(encoding="utf-8")
    assert "window.RNNKIT_EMBEDDED" in html and 'src="static/' not in html and 'href="static/' not in html
    assert not re.findall(r"(?:src|href)=[\"']?https?://", html)  # nothing fetched from elsewhere
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["tokens"] == list("Thou art more") and len(data["layers"]) == 2
    assert main(["inspect", str(classifier_dir), "goal", "--span", "0:3", "--out", str(tmp_path / "c")]) == 2
    assert "--span 0:3 must lie within the 1 tokens" in capsys.readouterr().err
    assert main(["inspect", str(classifier_dir), "goal", "--unit", "99", "--out", str(tmp_path / "c")]) == 2
    assert "unit must be in [0, 9]" in capsys.readouterr().err
