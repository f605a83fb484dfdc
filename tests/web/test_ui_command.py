"""`distill-es ui` as a user runs it: a real process on 127.0.0.1 whose --json line names the URL once it
listens; the pages answer with the security headers; a taken port is one JSON error (exit 4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from distill_es.web.serve import bind

from .conftest import Store, fingerprint


def ui_process(store: Store, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISTILL_ES_", "ANTHROPIC_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "distill_es.cli", "--home", str(store.home), "ui", "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


@pytest.fixture
def running(demo_store: Store) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    proc = ui_process(demo_store, "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield proc, json.loads(line)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_ui_prints_its_url_once_listening_and_serves_read_only(
    running: tuple[subprocess.Popen[str], dict[str, str]], demo_store: Store
) -> None:
    proc, announced = running
    before = fingerprint(demo_store.home)
    assert set(announced) == {"url", "home"}
    assert announced["url"].startswith("http://127.0.0.1:")  # loopback unless asked
    assert announced["home"] == str(demo_store.home)
    response = httpx.get(announced["url"], timeout=30)
    assert response.status_code == 200
    assert demo_store.session_id in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page = httpx.get(f"{announced['url']}sessions/{demo_store.session_id}", timeout=30)
    assert page.status_code == 200
    assert fingerprint(demo_store.home) == before
    assert proc.poll() is None


def test_ui_stops_cleanly_on_ctrl_c(running: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    proc, _ = running
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_a_taken_port_is_one_json_error(demo_store: Store) -> None:
    with bind("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        proc = ui_process(demo_store, "--port", str(port))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4
    assert out == ""
    error = json.loads(err)
    assert error["exit_code"] == 4 and f"127.0.0.1:{port}" in error["error"]


@pytest.mark.parametrize("host", ["", " ", "999.1.1.1", "1.2.3", "bad_host!", "-x.example"])
def test_a_host_that_is_no_address_is_a_usage_error_before_binding(demo_store: Store, host: str) -> None:
    proc = ui_process(demo_store, "--port", "0", "--host", host)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert out == ""
    error = json.loads(err)
    assert error["exit_code"] == 2 and "--host" in error["error"]


def test_host_problem_accepts_addresses_and_hostnames() -> None:
    from distill_es.web.serve import host_problem

    for good in ("127.0.0.1", "0.0.0.0", "::1", "[::1]", "localhost", "my-box.example.org", "example.org."):
        assert host_problem(good) is None, good
    for bad in ("", "999.1.1.1", "256.0.0.1", "a..b", "a b", "x" * 64):
        assert host_problem(bad) is not None, bad
