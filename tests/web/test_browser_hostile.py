"""Hostile text in a real headless Chromium, on a store a real `run` against the scripted teacher and
student servers produced: rationales, clusters, the diagnosis and a diff holding `<script>` and
`<img onerror>` render as literal text — no alert, no injected element, the text visible as written."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import HOSTILE, Served, cli_json, fingerprint

pytestmark = pytest.mark.browser
STORE = "hostile_store"


@pytest.fixture(scope="module")
def kit() -> Any:
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    from . import browser_kit

    return browser_kit


def assert_inert(browser: Any, kit: Any) -> None:
    from selenium.webdriver.common.by import By

    kit.assert_no_alert(browser)
    assert browser.find_elements(By.TAG_NAME, "script") == []
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []  # the pages have no image of their own


def test_hostile_text_is_inert_and_visible(browser: Any, served: Served, kit: Any) -> None:
    from selenium.webdriver.common.by import By

    sid = served.session_id
    before = fingerprint(served.home)
    view = cli_json("--home", served.home, "show", sid)
    kit.open_page(browser, served.url + "/")
    assert_inert(browser, kit)
    kit.click(browser, f'tr[data-session="{sid}"] a.session-link')
    assert_inert(browser, kit)
    rationales = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".edit-card .rationale")]
    assert rationales and all(HOSTILE in text for text in rationales)  # literally, as the teacher wrote it
    assert [e["rationale"] for e in view["plan"]["edits"]] == rationales
    details = browser.find_element(By.CSS_SELECTOR, "details.diagnosis")
    details.find_element(By.TAG_NAME, "summary").click()
    assert HOSTILE in browser.find_element(By.ID, "diagnosis").text
    assert_inert(browser, kit)

    edit_id = view["plan"]["edits"][0]["id"]
    kit.click(browser, f"#edit-{edit_id} a.edit-link")
    assert HOSTILE in browser.find_element(By.ID, "rationale").text
    assert_inert(browser, kit)
    for path in (f"/sessions/{sid}?at={view['version'] // 2}", "/review", "/trends", "/whatif"):
        kit.open_page(browser, served.url + path)
        assert_inert(browser, kit)
    kit.open_page(browser, served.url + "/review")
    if browser.find_elements(By.CSS_SELECTOR, ".review-item"):
        assert HOSTILE in browser.find_element(By.CSS_SELECTOR, ".review-item .rationale").text
        assert HOSTILE in browser.find_element(By.CSS_SELECTOR, ".review-item pre.diff").text
    assert kit.console_errors(browser) == []
    assert fingerprint(served.home) == before


def test_the_report_of_hostile_text_is_inert(browser: Any, served: Served, kit: Any, tmp_path: Any) -> None:
    from selenium.webdriver.common.by import By

    target = tmp_path / "report.html"
    cli_json("--home", served.home, "report", served.session_id, "-o", target)
    kit.open_page(browser, target.as_uri())
    assert_inert(browser, kit)
    rationales = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".edit-card .rationale")]
    assert rationales and all(HOSTILE in text for text in rationales)
    # the inlined stylesheet applied: the header is dark
    header = browser.find_element(By.CSS_SELECTOR, "header.top")
    assert header.value_of_css_property("background-color") == "rgba(29, 42, 58, 1)"
