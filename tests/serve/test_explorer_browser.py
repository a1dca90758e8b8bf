"""The explorer page in a real browser: Debian's chromium, driven by Selenium through chromedriver.

The page is loaded from a live uvicorn server on a loopback port; the test types text as a person
would and checks that what the page shows (probabilities, heatmap, span search, streamed sample)
is what the API answers. Skipped, saying why, only where no chromium / chromedriver is installed
(scripts/setup.sh installs Debian's packages when run as root).
"""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from rnnkit.cli.main import main
from rnnkit.serve import span_units
from rnnkit.serve.render import most_variable_unit
from tests.serve.conftest import HOSTILE_LABEL, HOSTILE_TEXT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("no chromium/chromedriver on this machine: scripts/setup.sh installs Debian's chromium and "
                "chromium-driver when run as root", allow_module_level=True)

from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

TEXT = "the striker scored a late goal and the coach said the team won"


@pytest.fixture(scope="module")
def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,2400",
                "--no-proxy-server"):
        options.add_argument(arg)
    # The driver path is given, so Selenium Manager never looks for (or downloads) a driver or a browser.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, condition, timeout=30):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def read_text(driver, model: str, text: str) -> None:
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"#model option[value='{model}']"))
    before = driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
    Select(driver.find_element(By.ID, "model")).select_by_value(model)
    box = driver.find_element(By.ID, "text")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)  # typed key by key; the page reads after a pause in typing
    tokens = len(text.split() if model == "news" else text)
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") not in (None, before)
         and d.execute_script("return window.explorer.state.data && window.explorer.state.data.tokens.length")
         == tokens)


def shown_probabilities(driver) -> dict[str, float]:
    return {node.get_attribute("data-label"): float(node.get_attribute("data-p"))
            for node in driver.find_elements(By.CSS_SELECTOR, "#final-probs .prob")}


def series_options(driver) -> list[tuple[str, str]]:
    return [(o.get_attribute("value"), o.text) for o in driver.find_elements(By.CSS_SELECTOR, "#series option")]


def labelled(series_text: dict[str, str], names) -> list[tuple[str, str]]:
    """The options the page should list: the data's names present in a layer, in the data's order."""
    return [(name, f"{name} ({text})") for name, text in series_text.items() if name in names]


def painted_colours(driver, canvas_id: str) -> int:
    """Distinct colours on a canvas: a drawn heatmap has many, a blank one one or two."""
    return driver.execute_script("""
        const c = document.getElementById(arguments[0]);
        if (!c.width || !c.height) return 0;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return seen.size;""", canvas_id)


def test_classifier_views_match_the_api(browser, live_server):
    browser.get(live_server + "/")
    read_text(browser, "news", TEXT)
    api = httpx.post(f"{live_server}/v1/classify", json={"texts": [TEXT], "probabilities": True}).json()
    expected = api["results"][0]["probabilities"]
    shown = shown_probabilities(browser)
    assert set(shown) == set(expected)
    for label, p in expected.items():
        assert shown[label] == pytest.approx(p, abs=1e-5)
    heatmap = browser.find_element(By.ID, "heatmap")
    tokens = len(TEXT.split())
    assert heatmap.get_attribute("data-rows") == "10" and heatmap.get_attribute("data-cols") == str(tokens)
    assert painted_colours(browser, "heatmap") > 20
    assert browser.find_element(By.ID, "prob-chart").get_attribute("data-steps") == str(tokens)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#saturation svg circle")) == 4 * 10  # 4 gates × 10 units
    # The series' names and texts come from the server's answer, not from a list of the page's own.
    inspected = httpx.post(f"{live_server}/v1/inspect", json={"text": TEXT}).json()
    assert series_options(browser) == labelled(inspected["series_text"], inspected["layers"][0]["series"])
    # Karpathy view: clicking a unit's row in the heatmap colours the text by that unit.
    ActionChains(browser).move_to_element_with_offset(heatmap, 40 - heatmap.size["width"] // 2,
                                                      3 * 12 + 6 - heatmap.size["height"] // 2).click().perform()
    assert browser.find_element(By.ID, "unit").get_attribute("value") == "3"
    coloured = browser.find_elements(By.CSS_SELECTOR, "#unit-text .tok")
    assert len(coloured) == tokens and len({c.value_of_css_property("background-color") for c in coloured}) > 3
    # LSTMVis view: select tokens 1..2 by dragging; the page's units are the API's for span [1, 3).
    spans = browser.find_elements(By.CSS_SELECTOR, "#span-text .tok")
    ActionChains(browser).click_and_hold(spans[1]).move_to_element(spans[2]).release().perform()
    found = httpx.post(f"{live_server}/v1/inspect", json={"text": TEXT, "span": [1, 3]}).json()["span_units"]
    shown_units = browser.find_element(By.ID, "span-result").get_attribute("data-units")
    assert json.loads(shown_units) == found["units"]
    matches = [int(n.get_attribute("data-t")) for n in browser.find_elements(By.CSS_SELECTOR, "#span-text .match")]
    assert matches == found["matches"]
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_language_model_views_and_streamed_generation(browser, live_server):
    browser.get(live_server + "/")
    text = "Thou art more"
    read_text(browser, "poet", text)
    inspected = httpx.post(f"{live_server}/v1/inspect", json={"text": text, "model": "poet"}).json()
    top = inspected["predictions"][-1]["top"]
    shown = shown_probabilities(browser)
    assert shown[top[0]["token"]] == pytest.approx(top[0]["p"], abs=1e-6)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#lm-steps tr[data-t]")) == len(text)
    assert painted_colours(browser, "heatmap") > 20
    assert browser.find_element(By.ID, "generate-panel").is_displayed()
    for field, value in (("gen-max", "60"), ("gen-temp", "0.7"), ("gen-seed", "11")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    browser.find_element(By.ID, "generate").click()
    sample = browser.find_element(By.CSS_SELECTOR, "#gen-out .sample")
    wait(browser, lambda d: sample.get_attribute("data-done") == "1")
    expected = httpx.post(f"{live_server}/v1/generate", json={"prompt": text, "model": "poet", "max_tokens": 60,
                                                              "temperature": 0.7, "seed": 11, "stream": False}).json()
    assert sample.get_attribute("textContent") == expected["text"]
    assert "60 tokens" in browser.find_element(By.ID, "gen-status").text


def test_inspect_html_file_renders_offline(browser, classifier_dir, tmp_path):
    out = tmp_path / "view"
    assert main(["inspect", str(classifier_dir), TEXT, "--out", str(out), "--span", "1:3", "--json"]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    browser.get(out.with_suffix(".html").as_uri())
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    shown = shown_probabilities(browser)
    for label, p in data["final"].items():
        assert shown[label] == pytest.approx(p, abs=1e-9)
    assert painted_colours(browser, "heatmap") > 20
    assert not browser.find_element(By.ID, "generate-panel").is_displayed()
    # The text is coloured by the unit the PNG shows (the most variable one).
    assert browser.find_element(By.ID, "unit").get_attribute("value") == str(most_variable_unit(data))
    # The span given on the command line is selected in the page, with the units Python finds for it.
    expected = span_units(data["layers"][0]["series"]["h"], 1, 3)
    assert json.loads(browser.find_element(By.ID, "span-result").get_attribute("data-units")) == expected["units"]


def test_inspect_html_file_lists_the_series_a_mingru_records(browser, mingru_lm_dir, tmp_path):
    # minGRU records "cand", which a list of names kept in the page once left out of the choice.
    out = tmp_path / "mini"
    assert main(["inspect", str(mingru_lm_dir), "Thou art", "--out", str(out), "--json"]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    browser.get(out.with_suffix(".html").as_uri())
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert [name for name, _ in series_options(browser)] == ["h", "z", "cand"]
    assert series_options(browser) == labelled(data["series_text"], data["layers"][0]["series"])
    Select(browser.find_element(By.ID, "series")).select_by_value("cand")
    assert painted_colours(browser, "heatmap") > 20
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#saturation figcaption")]
    assert captions == [f"z ({data['series_text']['z']})"]


def test_inspect_html_file_with_hostile_text_and_label_renders(browser, hostile_classifier_dir, tmp_path):
    """'<!--<script>' in the text or a label once swallowed the page's real </script>: nothing rendered."""
    out = tmp_path / "hostile"
    assert main(["inspect", str(hostile_classifier_dir), HOSTILE_TEXT, "--out", str(out), "--json"]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    browser.get(out.with_suffix(".html").as_uri())
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    shown = shown_probabilities(browser)
    assert HOSTILE_LABEL in shown and shown.keys() == data["final"].keys()
    assert browser.find_element(By.ID, "text").get_attribute("value") == HOSTILE_TEXT
    # The text is shown as text: its <b> is no element, and no script beyond the page's three exists.
    assert browser.execute_script("return document.querySelectorAll('b, script').length") == 3
    tokens = browser.find_elements(By.CSS_SELECTOR, "#unit-text .tok")
    assert [t.get_attribute("textContent") for t in tokens] == data["tokens"]
    assert painted_colours(browser, "heatmap") > 20
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # a script the page's policy refused would show here


def test_the_served_page_works_under_its_policy(browser, live_server):
    """The explorer sends a Content-Security-Policy without 'unsafe-inline'; everything still runs under it."""
    headers = httpx.get(live_server + "/").headers
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    browser.get(live_server + "/")
    read_text(browser, "poet", "Thou")
    assert painted_colours(browser, "heatmap") > 20
    assert len(browser.find_elements(By.CSS_SELECTOR, "#saturation svg circle")) > 0
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_the_api_docs_work_under_their_policy(browser, live_server):
    """Swagger UI's set-up script is inline: the policy allows it by hash, and the page renders the API."""
    browser.get(live_server + "/docs")
    if "swagger" not in browser.page_source.lower():
        pytest.skip("Swagger UI's files are not installed (fastapi-offline)")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"))
    assert "/v1/classify" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui").text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
