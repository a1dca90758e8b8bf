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


def test_serve_rejects_what_it_cannot_serve(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--max-batch", "0"]) == 2
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
