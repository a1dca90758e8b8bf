"""A bounded schemathesis run over the OpenAPI schema: whatever the request, never a 5xx, always the error shape.

For every operation, Hypothesis draws requests that fit the schema and requests that break it
(schemathesis' positive and negative modes), 20 of each, against a live server on a loopback port
with small limits (so no drawn request runs long). The drawing runs in its own process: see
fuzz_client.py for why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e .[dev])")


def test_no_server_error_and_one_error_shape(live_server):
    client = Path(__file__).with_name("fuzz_client.py")
    run = subprocess.run([sys.executable, str(client), live_server, "20"], capture_output=True, text=True,
                         timeout=600)
    assert run.stdout.strip(), run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0 and report["failure"] is None, report["failure"] or run.stderr[-3000:]
    seen = report["seen"]
    for path in ("/v1/classify", "/v1/generate", "/v1/inspect"):
        assert seen[f"POST {path} examples"] == [200], seen  # the documented examples work
        assert 200 in seen[f"POST {path} positive"] + seen[f"POST {path} examples"], seen
        assert set(seen[f"POST {path} negative"]) & {400, 413, 422}, seen
