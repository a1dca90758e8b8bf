"""`rnnkit inspect`'s files against hostile text and labels, a non-finite threshold and a full disk; the security
headers of the served explorer and API."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rnnkit.cli.main import main
from rnnkit.serve import create_app
from rnnkit.serve.security import EXPLORER_POLICY
from tests.serve.conftest import HOSTILE_LABEL, HOSTILE_TEXT, client_for


class Page(HTMLParser):
    """The page as an HTML parser sees it: each <script>'s text, and the CSP <meta>."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.scripts, self.policy, self._in_script = [], None, False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        elif tag == "meta" and (attrs.get("http-equiv") or "").lower() == "content-security-policy":
            self.policy = attrs["content"]

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def embedded_data(page: Page) -> dict:
    [script] = [s for s in page.scripts if s.startswith("window.RNNKIT_EMBEDDED = ")]
    return json.loads(script.removeprefix("window.RNNKIT_EMBEDDED = ").removesuffix(";"))


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_hostile_text_and_labels_stay_data_in_the_page(hostile_classifier_dir, tmp_path):
    out = tmp_path / "view"
    assert main(["inspect", str(hostile_classifier_dir), HOSTILE_TEXT, "--out", str(out)]) == 0
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"  # "$...$" drawn as text, not as mathtext
    text = out.with_suffix(".html").read_text(encoding="utf-8")
    page = Page(text)
    data = embedded_data(page)
    assert data["text"] == HOSTILE_TEXT and data["models"][0]["labels"][0] == HOSTILE_LABEL
    assert HOSTILE_LABEL in data["inspect"]["labels"]
    # Nothing in a script's text may end it or switch the HTML parser's script states (the HTML standard's
    # restrictions on script contents): html.parser does not model those states; a browser does.
    for script in page.scripts:
        assert not re.search(r"<!--|<script|</script", script, re.I)
    assert not re.search(r"[<>&]", page.scripts[-2])  # the data script: every <, >, & is a \u escape


def test_the_page_runs_only_its_own_scripts(classifier_dir, tmp_path):
    out = tmp_path / "view"
    assert main(["inspect", str(classifier_dir), "the team won", "--out", str(out)]) == 0
    page = Page(out.with_suffix(".html").read_text(encoding="utf-8"))
    directives = dict(part.strip().split(" ", 1) for part in page.policy.split(";"))
    assert directives["default-src"] == "'none'" and "unsafe" not in page.policy
    assert sorted(directives["script-src"].split()) == sorted(sha256_source(s) for s in page.scripts)
    assert len(page.scripts) == 3


def test_a_non_finite_threshold_is_refused(classifier_dir, tmp_path, capsys):
    for value in ("nan", "inf", "-inf"):
        out = tmp_path / value
        assert main(["inspect", str(classifier_dir), "the team", "--span", "0:1", f"--threshold={value}",
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "--threshold must be a finite number" in err and value in err
        assert list(tmp_path.iterdir()) == []


def test_a_failed_write_names_the_file_and_leaves_nothing(classifier_dir, tmp_path, capsys, monkeypatch):
    """ENOSPC half-way through the PNG (simulated: the writer writes some bytes, then the disk is full)."""
    from matplotlib.figure import Figure

    def full_disk(self, target, **kwargs):
        Path(target).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    out = tmp_path / "view"
    assert main(["inspect", str(classifier_dir), "the team", "--out", str(out)]) == 2
    assert f"{out.with_suffix('.png')}: No space left on device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_inspect_on_a_full_disk(classifier_dir, full_disk, capsys):
    out = full_disk / "x"
    assert main(["inspect", str(classifier_dir), "the team won " * 20, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and re.search(re.escape(str(full_disk / "x.")) + r"(png|html):", err)
    left = list(full_disk.iterdir())
    assert not [p for p in left if p.name.startswith(".")]  # no temporary left behind
    for path in left:  # whatever was written before the disk filled is whole
        assert path.suffix == ".png" and path.read_bytes().endswith(b"IEND\xaeB`\x82")


@pytest.mark.anyio
async def test_every_response_carries_csp_and_nosniff(classifier_dir):
    app = create_app({"news": str(classifier_dir)})
    async with client_for(app) as client:
        page = await client.get("/")
        answers = [await client.get("/v1/models"), await client.post("/v1/classify", json={"texts": ["goal"]}),
                   await client.post("/v1/classify", json={"texts": 3}), await client.get("/static/explorer.js"),
                   await client.get("/nowhere")]
        docs = await client.get("/docs")
    for response in [page, *answers, docs]:
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert "default-src 'none'" in response.headers["content-security-policy"], response.url
        assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert page.headers["content-security-policy"] == EXPLORER_POLICY
    assert "script-src 'self'" in EXPLORER_POLICY and "connect-src 'self'" in EXPLORER_POLICY
    assert not re.search(r"<script>", page.text)  # the served page has no inline script for the policy to allow
    if docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text:
        inline = re.findall(r"<script>(.*?)</script>", docs.text, re.S)
        assert inline and all(sha256_source(s) in docs.headers["content-security-policy"] for s in inline)
