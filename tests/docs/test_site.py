"""The documentation site: `mkdocs build --strict`, generated references, offline, and (with chromium) rendered.

One build per module, in a temporary folder, with tutorial 1 executed and the other tutorials rendered without
running them (they take minutes; `.ci/run` builds the whole site with every tutorial executed). Skipped, saying
why, where the `docs` extra is not installed; the browser part is skipped where no chromium / chromedriver is.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e .[docs])")
pytest.importorskip("mkdocs_jupyter", reason="the docs extra is not installed (pip install -e .[docs])")

from mkdocs.commands.build import build  # noqa: E402
from mkdocs.config import load_config  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.cli.main import build_parser  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXECUTED_TUTORIAL = "tutorials/01_equation_to_cell"
# Tags whose attribute the browser fetches by itself when the page loads.
FETCHED = {("link", "href"), ("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"),
           ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data"), ("input", "src")}
EXTERNAL = re.compile(r"^(https?:)?//", re.I)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(out), strict=True)
    jupyter = config.plugins["mkdocs-jupyter"].config
    jupyter["execute"] = True
    jupyter["execute_ignore"] = [f"*/{p.name}" for p in (ROOT / "docs" / "tutorials").glob("*.py")
                                 if p.stem != Path(EXECUTED_TUTORIAL).name]
    build(config)  # strict: any warning (broken link, missing reference, failing tutorial) raises
    return out


class _Resources(HTMLParser):
    """What a page makes the browser fetch: (tag, attribute, url), and the text of its inline scripts."""

    def __init__(self):
        super().__init__()
        self.fetched: list[tuple[str, str, str]] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.fetched += [(tag, attr, attrs[attr]) for t, attr in FETCHED if t == tag and attrs.get(attr)]
        self._in_script = tag == "script" and not attrs.get("src")

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts.append(data)


def resources(page: Path) -> _Resources:
    parser = _Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_no_page_fetches_anything_from_another_host(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 15
    offending = []
    for page in pages:
        found = resources(page)
        offending += [(str(page.relative_to(site)), tag, url) for tag, _, url in found.fetched if EXTERNAL.match(url)]
        offending += [(str(page.relative_to(site)), "inline script", m) for script in found.inline_scripts
                      for m in re.findall(r"https?://[^\s\"'`)]+", script)]
    for sheet in site.rglob("*.css"):
        offending += [(str(sheet.relative_to(site)), "css", m)
                      for m in re.findall(r"url\(\s*['\"]?(?:https?:)?//[^)]*\)", sheet.read_text(encoding="utf-8"))]
    assert offending == []


def test_the_executed_tutorial_shows_its_outputs_and_figure(site):
    page = (site / EXECUTED_TUTORIAL / "index.html").read_text(encoding="utf-8")
    assert "max |diff| = 0.0" in page  # a printed output: the hand-written RNN and rnnkit.RNNCell agree
    assert re.search(r'<img[^>]+src="data:image/png;base64,', page)  # the gradient-norm figure


def test_the_api_reference_documents_every_public_name(site):
    page = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'id="(rnnkit\.[\w.]+)"', page))
    documented = {anchor.rsplit(".", 1)[-1] for anchor in anchors}
    assert set(rnnkit.__all__) - documented == set()
    for module in ("rnnkit.api.classifier", "rnnkit.api.language_model", "rnnkit.export"):
        assert module in anchors


def test_the_cli_reference_is_each_verbs_help(site):
    page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    verbs = next(a for a in build_parser()._subparsers._group_actions if a.dest == "verb").choices
    assert len(verbs) >= 10
    for name, parser in verbs.items():
        assert f'id="rnnkit-{name}"' in page
        options = {s for action in parser._actions for s in action.option_strings if s.startswith("--")}
        missing = [s for s in options if s not in page]
        assert missing == [], (name, missing)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no chromium/chromedriver on this machine: scripts/setup.sh installs Debian's chromium and chromium-driver "
           "when run as root")


@pytest.fixture(scope="module")
def local_site(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--no-proxy-server"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every network request, from DevTools
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))  # the driver path: nothing downloaded
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def open_page(driver, url: str) -> dict:
    driver.get(url)
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all([...document.images].map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })))
            .then(() => done());""")
    return driver.execute_script("""
        const imgs = [...document.images];
        return {title: document.title, images: imgs.length, drawn: imgs.filter(i => i.naturalWidth > 0).length,
                text: document.querySelector('article') ? document.querySelector('article').innerText.length : 0};""")


@needs_browser
@pytest.mark.parametrize("path, min_images", [(EXECUTED_TUTORIAL + "/", 1), ("reference/api/", 0)])
def test_pages_render_with_their_figures_and_ask_no_other_host(browser, local_site, path, min_images):
    browser.get_log("performance")  # drop what earlier pages requested
    shown = open_page(browser, f"{local_site}/{path}")
    assert shown["text"] > 2000, shown  # the article rendered (the theme's scripts and styles loaded)
    assert shown["images"] >= min_images and shown["drawn"] == shown["images"], shown
    urls = requested_urls(browser)
    assert any(u.startswith(local_site) for u in urls)
    elsewhere = [u for u in urls if not (u.startswith(local_site + "/") or u.startswith("data:"))]
    assert elsewhere == []
