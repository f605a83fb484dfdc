"""The audit view in a real headless Chromium (Selenium, Debian's chromium-driver) on the demo store:
every page, list → session → edit, moving through versions, filters, what-if, and that the numbers
shown equal `show --json`, `history --json` and `review --json`; the store is unchanged after."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Served, cli_json, fingerprint

pytestmark = pytest.mark.browser
STORE = "demo_store"


@pytest.fixture(scope="module")
def kit() -> Any:
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    from . import browser_kit

    return browser_kit


def test_every_page_loads_without_errors(browser: Any, served: Served, kit: Any) -> None:
    sid = served.session_id
    before = fingerprint(served.home)
    for path in ("/", f"/sessions/{sid}", f"/sessions/{sid}?at=3", f"/sessions/{sid}/edits/edit_001",
                 f"/sessions/{sid}/edits/edit_002", f"/sessions/{sid}/edits/edit_003", "/trends",
                 "/whatif", "/review"):  # fmt: skip
        kit.open_page(browser, served.url + path)
        assert browser.title.endswith("distill-es audit"), path
        kit.assert_no_alert(browser)
        assert kit.console_errors(browser) == [], path  # a CSP violation would be logged here
    assert fingerprint(served.home) == before


def test_list_to_session_to_edit(browser: Any, served: Served, kit: Any) -> None:
    from selenium.webdriver.common.by import By

    sid = served.session_id
    view = cli_json("--home", served.home, "show", sid)
    kit.open_page(browser, served.url + "/")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-session="{sid}"]')
    assert row.find_element(By.CSS_SELECTOR, ".status").text == view["status"]
    assert kit.value_in(browser, f'tr[data-session="{sid}"] .cost') == [str(view["teacher_cost_usd"])]
    assert row.find_element(By.CSS_SELECTOR, ".verify").text == "ok"

    kit.click(browser, f'tr[data-session="{sid}"] a.session-link')
    assert browser.current_url == f"{served.url}/sessions/{sid}"
    assert browser.find_element(By.ID, "session-id").text == sid
    assert browser.find_element(By.CSS_SELECTOR, "#status .status").text == view["status"]
    assert browser.find_element(By.ID, "version").text == str(view["version"])
    assert kit.value_in(browser, "#benchmark") == [
        str(view["benchmark_before"]["overall_score"]),
        str(view["benchmark_after"]["overall_score"]),
    ]
    for outcome in view["edit_outcomes"]:
        card = browser.find_element(By.ID, f"edit-{outcome['edit_id']}")
        assert card.find_element(By.CSS_SELECTOR, "h3 .status").text == outcome["status"]
        expected = "" if outcome["benchmark_delta"] is None else str(outcome["benchmark_delta"])
        assert kit.value_in(browser, f"#edit-{outcome['edit_id']} .delta") == [expected]

    rejected = next(o for o in view["edit_outcomes"] if o["status"] == "rejected_by_gate")
    kit.click(browser, f"#edit-{rejected['edit_id']} a.edit-link")
    assert browser.current_url == f"{served.url}/sessions/{sid}/edits/{rejected['edit_id']}"
    assert browser.find_element(By.ID, "edit-id").text == rejected["edit_id"]
    assert [float(v) for v in kit.value_in(browser, "#gate-delta")] == [rejected["benchmark_delta"]]
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.chart rect[data-cluster]")
    shown = {
        (b.get_attribute("data-cluster"), b.get_attribute("data-kind")): float(b.get_attribute("data-value"))
        for b in bars
    }
    for cluster, change in rejected["cluster_deltas"].items():
        assert shown[(cluster, "after")] - shown[(cluster, "before")] == pytest.approx(change)
    kit.click(browser, "#back-to-session")
    assert browser.current_url == f"{served.url}/sessions/{sid}"


def test_moving_through_versions(browser: Any, served: Served, kit: Any) -> None:
    from selenium.webdriver.common.by import By

    sid = served.session_id
    history = cli_json("--home", served.home, "history", sid)
    kit.open_page(browser, f"{served.url}/sessions/{sid}")
    for version in (1, len(history) // 2, len(history)):
        kit.click(browser, f"#v-{version}")
        at = cli_json("--home", served.home, "show", sid, "--at", version)
        assert browser.find_element(By.ID, "as-of-version").text == str(version)
        assert browser.find_element(By.CSS_SELECTOR, "#status .status").text == at["status"]
        assert browser.find_element(By.ID, "version").text == str(at["version"])
        rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tr.event")
        assert [int(r.get_attribute("data-version")) for r in rows] == list(range(1, version + 1))
        cards = browser.find_elements(By.CSS_SELECTOR, ".edit-card")
        plan_edits = [e["id"] for e in (at["plan"] or {}).get("edits", [])]
        assert [c.get_attribute("data-edit") for c in cards] == plan_edits
    # a payload opens under its <details>
    first = browser.find_element(By.CSS_SELECTOR, "#event-1 details")
    first.find_element(By.TAG_NAME, "summary").click()
    assert '"autonomy_mode"' in first.find_element(By.CSS_SELECTOR, "pre.payload").text
    kit.click(browser, "#latest-link")
    assert browser.current_url == f"{served.url}/sessions/{sid}"


def test_filters_from_the_form(browser: Any, served: Served, kit: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    kit.open_page(browser, served.url + "/")
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("completed")
    kit.click(browser, "#filter-apply")
    assert browser.current_url.endswith("?status=completed&trigger=")
    assert browser.find_elements(By.ID, "no-sessions")
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("awaiting_review")
    kit.click(browser, "#filter-apply")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.session-row")
    assert [r.get_attribute("data-session") for r in rows] == [served.session_id]


def test_review_queue_and_trends(browser: Any, served: Served, kit: Any) -> None:
    from selenium.webdriver.common.by import By

    items = cli_json("--home", served.home, "review")
    kit.open_page(browser, served.url + "/")
    kit.click(browser, "#nav-review")
    shown = [(e.get_attribute("data-session"), e.get_attribute("data-edit"))
             for e in browser.find_elements(By.CSS_SELECTOR, ".review-item")]  # fmt: skip
    assert shown == [(i["session_id"], i["edit_id"]) for i in items]
    assert "convert units explicitly" in browser.find_element(By.CSS_SELECTOR, "pre.diff").text
    assert not browser.find_elements(By.TAG_NAME, "form")  # read-only

    kit.click(browser, "#nav-trends")
    view = cli_json("--home", served.home, "show", served.session_id)
    dots = browser.find_elements(By.CSS_SELECTOR, 'svg.chart circle[data-series="overall"]')
    assert [float(d.get_attribute("data-value")) for d in dots] == [view["benchmark_after"]["overall_score"]]


def test_whatif_form_and_edit_lineage(browser: Any, served: Served, kit: Any) -> None:
    from selenium.webdriver.common.by import By

    kit.open_page(browser, served.url + "/")
    kit.click(browser, "#nav-whatif")
    for eps in ("0.9", "0.01"):
        field = browser.find_element(By.ID, "max-regression")
        field.clear()
        field.send_keys(eps)
        kit.click(browser, "#whatif-apply")
        report = cli_json("--home", served.home, "regate", "--all", "--max-regression", eps)
        assert browser.find_element(By.ID, "flip-count").text == str(report["flips"])
        rows = browser.find_elements(By.CSS_SELECTOR, "tr.gate-row")
        assert [(r.get_attribute("data-edit"), r.get_attribute("data-flipped")) for r in rows] == [
            (g["edit_id"], str(g["flipped"]).lower()) for s in report["sessions"] for g in s["gates"]
        ]
    # from a gate row to its edit's lineage
    first = browser.find_element(By.CSS_SELECTOR, "tr.gate-row").get_attribute("data-edit")
    kit.click(browser, f'tr.gate-row[data-edit="{first}"] td:nth-child(2) a')
    lineage = cli_json("--home", served.home, "explain", served.session_id, first)
    links = browser.find_elements(By.CSS_SELECTOR, "ol.chain > li")
    assert [li.get_attribute("data-applies") for li in links] == [
        str(lineage[k]["applies"]).lower()
        for k in ("traces", "cluster", "teacher_call", "edit", "routing", "validation", "commit", "gate",
                  "review", "undo")
    ]  # fmt: skip
    if lineage["commit"]["commit_sha"]:
        assert lineage["commit"]["commit_sha"] in browser.find_element(By.ID, "link-commit").text
