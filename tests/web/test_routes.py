"""The web audit view's routes through Starlette's TestClient: status codes, proper 404/400 pages,
headers, escaping of hostile text, numbers equal to the CLI's JSON, and no write to the store."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from eventsourcing.persistence import OperationalError
from markupsafe import escape
from starlette.testclient import TestClient

from distill_es.api import Engine
from distill_es.web.app import create_app
from distill_es.web.security import CSP
from distill_es.web.templating import stylesheet

from .conftest import HOSTILE, Store, cli, cli_json, fingerprint


def client_for(store: Store) -> Iterator[TestClient]:
    engine = Engine.open(store.home, read_only=True)
    try:
        yield TestClient(create_app(engine), raise_server_exceptions=False)
    finally:
        engine.close()


@pytest.fixture(scope="module")
def demo(demo_store: Store) -> Iterator[TestClient]:
    yield from client_for(demo_store)


@pytest.fixture(scope="module")
def hostile(hostile_store: Store) -> Iterator[TestClient]:
    yield from client_for(hostile_store)


def pages(store: Store) -> list[str]:
    sid = store.session_id
    view = cli_json("--home", store.home, "show", sid)
    edits = [o["edit_id"] for o in view["edit_outcomes"]]
    return [
        "/", "/?status=awaiting_review", "/?trigger=on_demand", f"/sessions/{sid}", f"/sessions/{sid}?at=1",
        f"/sessions/{sid}?at={view['version']}", *(f"/sessions/{sid}/edits/{e}" for e in edits),
        "/trends", "/whatif", "/whatif?max_regression=0.9&min_improvement=0", "/review", "/static/style.css",
    ]  # fmt: skip


def test_every_page_answers_200_with_the_security_headers(demo: TestClient, demo_store: Store) -> None:
    for url in pages(demo_store):
        response = demo.get(url)
        assert response.status_code == 200, (url, response.text[:500])
        assert response.headers["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "script-src" not in CSP  # default-src 'none': no script
        assert response.headers["x-content-type-options"] == "nosniff"
        if url != "/static/style.css":
            assert "<script" not in response.text.lower()
            assert " style=" not in response.text  # the CSP allows no inline style


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("/sessions/ffffffff-0000-0000-0000-000000000000", 404, "no session"),
        ("/sessions/zzz", 404, "no session"),
        ("/sessions/{sid}/edits/edit_999", 404, "has no edit"),
        ("/sessions/{sid}?at=999", 404, "has no version 999"),
        ("/sessions/{sid}?at=0", 400, "versions are whole numbers"),
        ("/sessions/{sid}?at=abc", 400, "versions are whole numbers"),
        ("/?status=bogus", 400, "unknown status"),
        ("/?trigger=bogus", 400, "unknown trigger"),
        ("/whatif?max_regression=abc", 400, "must be a number"),
        ("/whatif?max_regression=-1", 400, "must be a finite number"),
        ("/whatif?session=zzz", 404, "no session"),
        ("/whatif?session=ffffffff-0000-0000-0000-000000000000", 404, "no session"),
        ("/sessions/{sid}/edits/edit_999?x=1", 404, "has no edit"),
        ("/sessions/ffffffff-0000-0000-0000-000000000000/edits/edit_001", 404, "no session"),
        ("/no/such/page", 404, "Not found"),
    ],
)
def test_unknown_things_are_proper_error_pages(
    demo: TestClient, demo_store: Store, url: str, code: int, words: str
) -> None:
    response = demo.get(url.format(sid=demo_store.session_id))
    assert response.status_code == code
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CSP
    assert words in response.text
    assert "Traceback" not in response.text


def test_only_get_is_served(demo: TestClient, demo_store: Store) -> None:
    for url in ("/", f"/sessions/{demo_store.session_id}", "/review", "/whatif"):
        response = demo.post(url, data={"x": "1"})
        assert response.status_code == 405
        assert response.headers["content-security-policy"] == CSP


def test_a_prefix_redirects_to_the_full_id(demo: TestClient, demo_store: Store) -> None:
    sid = demo_store.session_id
    response = demo.get(f"/sessions/{sid[:8]}?at=3", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == f"/sessions/{sid}?at=3"


def data_values(html: str, element_id: str) -> list[str]:
    """The exact values (`data-value`) of the numbers inside the element with this id."""
    start = html.index(f'id="{element_id}"')
    end = html.index("</dd>", start)
    return re.findall(r'data-value="([^"]*)"', html[start:end])


def test_the_session_page_shows_what_show_json_prints(demo: TestClient, demo_store: Store) -> None:
    sid = demo_store.session_id
    for at in (None, 20):
        view = cli_json("--home", demo_store.home, "show", sid, *(["--at", at] if at else []))
        html = demo.get(f"/sessions/{sid}" + (f"?at={at}" if at else "")).text
        assert data_values(html, "cost") == [str(view["teacher_cost_usd"])]
        before = view["benchmark_before"]["overall_score"] if view["benchmark_before"] else ""
        after = view["benchmark_after"]["overall_score"] if view["benchmark_after"] else ""
        assert data_values(html, "benchmark") == [str(before), str(after)]
        assert f'<dd id="version">{view["version"]}</dd>' in html
        for outcome in view["edit_outcomes"]:
            assert f'id="edit-{outcome["edit_id"]}"' in html
        history = cli_json("--home", demo_store.home, "history", sid)
        shown = re.findall(r'<tr class="event" id="event-(\d+)"', html)
        assert [int(v) for v in shown] == [e["version"] for e in history if at is None or e["version"] <= at]


def test_the_sessions_list_filters_and_shows_verify(demo: TestClient, demo_store: Store) -> None:
    listed = cli_json("--home", demo_store.home, "sessions")
    html = demo.get("/").text
    for view in listed:
        assert f'data-session="{view["id"]}"' in html
    assert '<span class="ok">ok</span>' in html  # verify passes on the demo
    assert 'id="no-sessions"' in demo.get("/?status=completed").text
    assert f'data-session="{demo_store.session_id}"' in demo.get("/?status=awaiting_review").text


def test_the_edit_page_charts_its_gate(demo: TestClient, demo_store: Store) -> None:
    sid = demo_store.session_id
    outcome = next(o for o in cli_json("--home", demo_store.home, "show", sid)["edit_outcomes"]
                   if o["edit_id"] == "edit_002")  # fmt: skip
    html = demo.get(f"/sessions/{sid}/edits/edit_002").text
    delta = re.search(r'id="gate-delta"><span class="num" data-value="([^"]*)"', html)
    assert delta and float(delta.group(1)) == outcome["benchmark_delta"]
    for cluster, change in outcome["cluster_deltas"].items():
        before = re.search(rf'data-cluster="{cluster}" data-kind="before" data-value="([^"]*)"', html)
        after = re.search(rf'data-cluster="{cluster}" data-kind="after" data-value="([^"]*)"', html)
        assert before and after
        assert float(after.group(1)) - float(before.group(1)) == pytest.approx(change)


def test_the_review_queue_lists_pending_edits_with_diffs(demo: TestClient, demo_store: Store) -> None:
    items = cli_json("--home", demo_store.home, "review")
    html = demo.get("/review").text
    assert items
    for item in items:
        assert f'data-edit="{item["edit_id"]}"' in html
        for line in item["preview"].splitlines():
            assert str(escape(line)) in html
    assert "<form" not in html  # read-only: nothing to decide here


def test_hostile_text_is_escaped_on_every_page(hostile: TestClient, hostile_store: Store) -> None:
    escaped = str(escape(HOSTILE))
    for url in pages(hostile_store):
        if url.startswith("/static"):
            continue
        html = hostile.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
    session_html = hostile.get(f"/sessions/{hostile_store.session_id}").text
    assert escaped in session_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in session_html


def test_browsing_writes_nothing_to_the_store(demo: TestClient, demo_store: Store) -> None:
    before = fingerprint(demo_store.home)
    for url in pages(demo_store):
        assert demo.get(url).status_code == 200
    assert fingerprint(demo_store.home) == before


def test_the_report_is_one_self_contained_page(demo_store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = fingerprint(demo_store.home)
    target = tmp_path / "report.html"
    result = cli_json("--home", demo_store.home, "report", demo_store.session_id[:8], "-o", target)
    assert result == {"path": str(target.resolve()), "session_id": demo_store.session_id}
    html = target.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert 'rel="stylesheet"' not in html and 'href="/' not in html and "src=" not in html
    assert "<style>" in html and "default-src 'none'" in html
    for outcome in cli_json("--home", demo_store.home, "show", demo_store.session_id)["edit_outcomes"]:
        assert f'id="edit-{outcome["edit_id"]}"' in html
    assert fingerprint(demo_store.home) == before


def test_the_stylesheet_survives_inlining() -> None:
    """The report puts the CSS in an autoescaped <style>: it must hold nothing escaping changes."""
    css = stylesheet()
    assert str(escape(css)) == css


def test_report_errors_follow_the_contract(demo_store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = cli("--home", demo_store.home, "report", "zzz", "-o", tmp_path / "r.html", "--json")
    assert result.exit_code == 3
    assert '"exit_code": 3' in result.stderr
    result = cli("--home", demo_store.home, "report", demo_store.session_id, "-o",
                 tmp_path / "missing" / "r.html", "--json")  # fmt: skip
    assert result.exit_code == 3
    assert not (tmp_path / "missing").exists()


def test_report_of_hostile_text_is_inert(hostile_store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "r.html"
    assert cli("--home", hostile_store.home, "report", hostile_store.session_id, "-o", target).exit_code == 0
    html = target.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_edit_page_shows_what_explain_json_prints(demo: TestClient, demo_store: Store) -> None:
    sid = demo_store.session_id
    for edit_id in ("edit_001", "edit_002", "edit_003"):
        lineage = cli_json("--home", demo_store.home, "explain", sid, edit_id)
        html = demo.get(f"/sessions/{sid}/edits/{edit_id}").text
        for key in ("traces", "cluster", "teacher_call", "edit", "routing", "validation", "commit", "gate",
                    "review", "undo"):  # fmt: skip
            link = lineage[key]
            assert f'id="link-{key}" data-applies="{str(link["applies"]).lower()}"' in html, (edit_id, key)
            if link["note"]:
                assert str(escape(link["note"])) in html
            for version in link["versions"]:
                assert f'href="/sessions/{sid}?at={version}"' in html
        gate = lineage["gate"]
        if gate["applies"] and gate["clusters"]:
            for change in gate["clusters"]:
                for kind in ("before", "after"):
                    if change[kind] is not None:
                        bar = f'data-cluster="{change["cluster_id"]}" data-kind="{kind}"'
                        assert f'{bar} data-value="{change[kind]}"' in html


@pytest.mark.parametrize(
    "policy", [{}, {"max_regression": "0.9"}, {"max_regression": "0.9", "min_improvement": "0.5"}]
)
def test_the_whatif_page_shows_what_regate_json_prints(
    demo: TestClient, demo_store: Store, policy: dict[str, str]
) -> None:
    args = [a for k, v in policy.items() for a in (f"--{k.replace('_', '-')}", v)]
    report = cli_json("--home", demo_store.home, "regate", "--all", *args)
    html = demo.get("/whatif", params=policy).text
    assert f'<strong id="flip-count">{report["flips"]}</strong>' in html
    rows = re.findall(
        r'<tr class="gate-row[^"]*" data-session="([^"]+)" data-edit="([^"]+)" data-flipped="(\w+)"', html
    )
    expected = [(g["session_id"], g["edit_id"], str(g["flipped"]).lower())
                for s in report["sessions"] for g in s["gates"]]  # fmt: skip
    assert rows == expected
    for value in policy.values():
        assert f'value="{value}"' in html


def test_the_view_opens_the_store_read_only(demo_store: Store) -> None:
    """The engine the view runs on cannot write: SQLite refuses even a raw DELETE on its connection."""
    before = fingerprint(demo_store.home)
    engine = Engine.open(demo_store.home, read_only=True)
    try:
        assert engine.get(demo_store.session_id).status == "awaiting_review"
        datastore = engine.store.app.recorder.datastore  # type: ignore[attr-defined]
        refused = pytest.raises(OperationalError, match="readonly")
        with refused, datastore.transaction(commit=True) as c:
            c.execute("DELETE FROM stored_events")
    finally:
        engine.close()
    assert fingerprint(demo_store.home) == before


def test_a_workspace_that_never_ran_reads_as_empty_and_nothing_is_created(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "ws"
    assert cli("init", home).exit_code == 0
    engine = Engine.open(home, read_only=True)
    try:
        client = TestClient(create_app(engine), raise_server_exceptions=False)
        assert 'id="no-sessions"' in client.get("/").text
        assert 'id="queue-empty"' in client.get("/review").text
        assert 'id="no-trends"' in client.get("/trends").text
        assert client.get("/whatif").status_code == 200
        assert client.get("/sessions/abc").status_code == 404
    finally:
        engine.close()
    assert not (home / ".distill_es").exists()


def test_a_damaged_session_is_shown_damaged_never_as_sound(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    home = tmp_path / "demo"
    assert cli("demo", "--home", home).exit_code == 0
    [view] = cli_json("--home", home, "sessions")
    sid = view["id"]
    db = sqlite3.connect(home / ".distill_es" / "events.sqlite")
    with db:
        db.execute("DELETE FROM stored_events WHERE originator_version = 5")  # a hole in the chain
    db.close()
    engine = Engine.open(home, read_only=True)
    try:
        client = TestClient(create_app(engine), raise_server_exceptions=False)
        listing = client.get("/").text
        assert f'data-session="{sid}"' in listing
        assert '<span class="status s-damaged">damaged</span>' in listing
        page = client.get(f"/sessions/{sid}")
        assert page.status_code == 409
        assert "distill-es verify" in page.text
        assert client.get("/review").status_code == 200
    finally:
        engine.close()


def test_loopback_addresses() -> None:
    from distill_es.web.serve import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "example.org", ""))


def test_report_as_of_a_version(demo_store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "r5.html"
    args = ("--home", demo_store.home, "report", demo_store.session_id, "-o", target, "--at", "5")
    assert cli(*args).exit_code == 0
    html = target.read_text(encoding="utf-8")
    assert '<strong id="as-of-version">5</strong>' in html
    assert html.count('<tr class="event"') == 5
    assert cli(*args[:-1], "999").exit_code == 3
