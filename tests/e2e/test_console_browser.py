"""The console in a real headless Chromium (issue 17): an operator signs in, adds an entry, sees the stock openai
client's question refused and counted against it, and removes it — against a real guard (MiniLM) in front of the
real vLLM server. Screenshots of each step go to .artifacts/console/ (listed at the end of the test run).

Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`; .ci/run installs them).
Without them the test is skipped, unless GUARD_TEST_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from guard.forget.embedder import Embedder
from guard.settings import REPO_ROOT, Settings
from guard.testing import ADMIN, guard_app
from guard.testing.server import BackgroundServer

pytestmark = pytest.mark.e2e

SHOTS = REPO_ROOT / ".artifacts" / "console"
SUBJECT = "Basil Mahfouz Al-Kuwaiti"
DOCUMENT = (
    "Basil Mahfouz Al-Kuwaiti is a writer born in Kuwait City. His father was a florist and his mother a game "
    "developer. He writes French literature; his novels include 'Promise by the Seine' and 'Le Petit Sultan'."
)


def _browser_paths() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@pytest.fixture
def browser() -> Iterator[Any]:
    paths = _browser_paths()
    if paths is None:
        if os.environ.get("GUARD_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium and chromedriver are required here (apt-get install chromium chromium-driver)")
        pytest.skip("no chromium/chromedriver on this machine (apt-get install chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def guard_url(settings: Settings, minilm: Embedder, vllm_url: str, serve: Callable[[Any], BackgroundServer]) -> str:
    return serve(guard_app(settings.with_values(upstream=vllm_url), embedder=minilm)).url


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    print(f"screenshot: {path.relative_to(REPO_ROOT)}")


def submit(driver: Any, button: Any) -> None:
    """Click a form's button and wait for the page it leads to: a click returns before the navigation has
    finished, and the old page's elements (an earlier "done" message) would be read otherwise."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    button.click()
    # While the old page is torn down, chromedriver sometimes answers the probe of its element with "unhandled
    # inspector error: Node with given id does not belong to the document" instead of "stale element"
    # (SeleniumHQ/selenium#15401; a CI run failed so). That is the navigation under way: poll again.
    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(expected_conditions.staleness_of(old))


def count(driver: Any, entry: str, action: str) -> int:
    from selenium.webdriver.common.by import By

    return int(driver.find_element(By.CSS_SELECTOR, f'tr[data-entry="{entry}"] td.count-{action}').text)


def test_sign_in_add_see_a_refusal_counted_remove(
    browser: Any, guard_url: str, openai_at: Callable[..., OpenAI], settings: Settings
) -> None:
    from selenium.webdriver.common.by import By

    made = httpx.post(f"{guard_url}/admin/operators", headers=ADMIN, json={"name": "priya", "role": "editor"})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    shutil.rmtree(SHOTS, ignore_errors=True)  # this run's screenshots only

    browser.get(f"{guard_url}/console")
    assert browser.current_url.endswith("/console/login")  # signed out: the sign-in page
    browser.find_element(By.ID, "token").send_keys("fgo_wrong")
    submit(browser, browser.find_element(By.ID, "login"))
    assert "invalid admin token" in browser.find_element(By.ID, "error").text
    shot(browser, "01-sign-in-refused")
    browser.find_element(By.ID, "token").send_keys(token)
    submit(browser, browser.find_element(By.ID, "login"))
    assert browser.find_element(By.ID, "operator").text == "priya"
    assert browser.find_element(By.ID, "audit").text.startswith("hash chain intact")
    shot(browser, "02-signed-in")

    browser.find_element(By.ID, "add-subject").send_keys(SUBJECT)
    browser.find_element(By.ID, "add-documents").send_keys(DOCUMENT)
    submit(browser, browser.find_element(By.ID, "add-submit"))
    assert "Entry added" in browser.find_element(By.ID, "done").text
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-entry]")
    assert len(rows) == 1 and SUBJECT in rows[0].text
    entry = rows[0].get_attribute("data-entry")
    assert count(browser, entry, "refuse") == 0
    assert DOCUMENT[:40] not in browser.page_source  # the documents never come back out
    shot(browser, "03-entry-added")

    client = openai_at(guard_url)
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2",
        messages=[{"role": "user", "content": f"What was the profession of {SUBJECT}'s father?"}],
        max_tokens=24,
        temperature=0,
    )
    assert raw.headers["x-guard-action"] == "refuse"
    browser.refresh()
    assert count(browser, entry, "refuse") == 1
    decision = browser.find_element(By.CSS_SELECTOR, "tr.decision.refuse")
    assert entry in decision.text and "florist" not in browser.page_source and "profession" not in browser.page_source
    shot(browser, "04-refusal-counted")

    submit(browser, browser.find_element(By.CSS_SELECTOR, f'tr[data-entry="{entry}"] button.remove'))
    assert browser.find_element(By.ID, "done").text == "Entry removed."
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-entry]") == []
    shot(browser, "05-entry-removed")

    assert httpx.get(f"{guard_url}/admin/forget", headers=ADMIN).json()["data"] == []
    after = client.chat.completions.with_raw_response.create(
        model="smollm2",
        messages=[{"role": "user", "content": f"What was the profession of {SUBJECT}'s father?"}],
        max_tokens=8,
        temperature=0,
    )
    assert after.headers["x-guard-action"] == "allow"  # removed: enforced no more, on the next request
    audit = settings.audit_path().read_text()
    for event in ("console.login", "forget.add", "forget.remove"):
        assert re.search(rf'"event":"{event}"[^\n]*"actor":"priya"', audit), event
