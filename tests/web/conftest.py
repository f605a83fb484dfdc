"""Fixtures for the web audit view: a demo store, a store the scripted teacher and student servers
produced (whose teacher wrote hostile HTML), the real server on a free 127.0.0.1 port, and a headless
Chromium driven by Selenium.

The browser is skipped with a reason when Debian's chromium/chromium-driver are absent, unless
DISTILL_ES_REQUIRE_BROWSER=1 (CI, .ci/run), where their absence is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from distill_es.api import Engine
from distill_es.cli.main import app as cli_app
from distill_es.demo import world
from distill_es.demo.dev_servers import create_dev_workspace
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer, tool_uses_reply
from distill_es.web.app import create_app
from distill_es.web.serve import bind, server, url_of

ENV_VARS = ("DISTILL_ES_HOME", "DISTILL_ES_STORE", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
            "ANTHROPIC_BASE_URL", "DISTILL_ES_STUDENT_URL")  # fmt: skip
HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(2)> &amp; \"q\" 'q'"
SESSION_ID = re.compile(r"session ([0-9a-f-]{36})")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def cli(*args: Any, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli_app, [str(a) for a in args], env=env)


def cli_json(*args: Any) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@dataclass
class Store:
    home: Path
    session_id: str


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """`distill-es demo`: one session awaiting review (edit_001 kept, edit_002 rejected by its gate,
    edit_003 pending)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_VARS:
            mp.delenv(name, raising=False)
        home = tmp_path_factory.mktemp("web-demo") / "demo"
        result = cli("demo", "--home", home)
    assert result.exit_code == 0, result.output
    found = SESSION_ID.search(result.stdout)
    assert found, result.stdout
    return Store(home, found.group(1))


def hostile_teacher(request: dict[str, Any]) -> dict[str, Any]:
    """The demo teacher, with HTML in every string it controls: rationales, cluster descriptions and
    skill gaps, the diagnosis, and a line of the prompt diff it proposes."""
    edits = [{**edit, "rationale": f"{edit['rationale']} {HOSTILE}"} for edit in world.EDITS]
    edits[2]["payload"] = {
        **edits[2]["payload"],
        "diff": world.PROMPT_PATCH.replace("number only.", f"number only. {HOSTILE}"),
    }
    clusters = [{**c, "description": f"{c['description']} {HOSTILE}", "skill_gap": HOSTILE}
                for c in world.CLUSTERS]  # fmt: skip
    if (request.get("tool_choice") or {}).get("name") == "submit_plan":
        return tool_uses_reply([("submit_plan", {"edits": edits})])
    answer = world.teacher_reply(request)
    for block in answer["content"]:
        if block.get("type") == "tool_use" and block["name"] == "submit_diagnosis":
            block["input"] = {"diagnosis_markdown": f"{world.DIAGNOSIS}\n{HOSTILE}\n", "clusters": clusters}
    return answer


@pytest.fixture(scope="session")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A real `distill-es run` against the scripted Anthropic and student servers (127.0.0.1), whose
    teacher wrote HTML into rationales, clusters, the diagnosis and a diff."""
    with (
        pytest.MonkeyPatch.context() as mp,
        ScriptedAnthropicServer(hostile_teacher) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        for name in ENV_VARS:
            mp.delenv(name, raising=False)
        home = create_dev_workspace(tmp_path_factory.mktemp("web-hostile") / "ws", student_server.base_url)
        env = {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": teacher_server.base_url}
        result = cli("--home", home, "run", env=env)
    assert result.exit_code == 0, result.output
    [view] = cli_json("--home", home, "sessions")
    return Store(home, view["id"])


def fingerprint(home: Path) -> tuple[int, str]:
    """(events stored, sha256 of the store file's bytes): equal before and after means nothing was written."""
    path = home / ".distill_es" / "events.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        count = db.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
    db.close()
    return count, hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Served:
    url: str
    home: Path
    session_id: str


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The real uvicorn server on a free 127.0.0.1 port over the store named by the test module's
    `STORE` fixture name (demo_store by default), opened read-only as `distill-es ui` opens it."""
    store: Store = request.getfixturevalue(getattr(request.module, "STORE", "demo_store"))
    engine = Engine.open(store.home, read_only=True)
    sock = bind("127.0.0.1", 0)
    listening = threading.Event()
    uv = server(create_app(engine), sock, listening.set)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert listening.wait(20), "the server did not start listening"
    try:
        yield Served(url_of(sock).rstrip("/"), store.home, store.session_id)
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()
        engine.close()


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _no_browser(reason: str) -> None:
    if os.environ.get("DISTILL_ES_REQUIRE_BROWSER") == "1":
        pytest.fail(f"a headless Chromium is required here (DISTILL_ES_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"{reason}: install Debian's chromium and chromium-driver to run the browser tests")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's) through its chromedriver; no browser is downloaded."""
    binary = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    driver_path = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    if not binary or not driver_path:
        _no_browser("chromium or chromedriver is not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _no_browser("selenium is not installed")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1600", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.binary_location = str(binary)
    driver = webdriver.Chrome(service=Service(executable_path=str(driver_path)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
