"""The threaded JSON-over-HTTP server both scripted servers build on, and the failures they inject."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Json = dict[str, Any]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler must not keep the test process alive
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a client opening 8 connections at once can have a
    # SYN dropped and retried a second later. Model servers listen with a deep backlog; so do these.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the tests, not errors


class JsonHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1, port 0, served from a daemon thread.

    Subclasses implement `handle(method, path, body) -> (status, json, headers)`; a `bytes` payload is
    sent as it is (a malformed body). Every JSON body received is appended to `.requests` (including
    the ones answered with an injected failure), its headers (lower-cased names) to `.headers` at the
    same index. `port` binds a given port (a server restarted where a dead one was); 0 picks one.
    """

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Json] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", port), self._handler_class())
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()  # wakes handlers sleeping in `_sleep`
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> JsonHTTPServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._closed.wait(seconds)

    def handle(self, method: str, path: str, body: Json | None) -> tuple[int, Json, dict[str, str]]:
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs
            disable_nagle_algorithm = True  # else each response waits ~40 ms for a delayed ACK

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _dispatch(self, method: str) -> None:
                if server._closed.is_set():  # a kept-alive connection to a closed server: drop it
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body: Json | None = None
                if raw:
                    try:
                        body = json.loads(raw)
                    except json.JSONDecodeError:
                        self._send(400, {"error": {"message": "body is not JSON"}}, {})
                        return
                    with server._lock:
                        server.requests.append(body)
                        server.headers.append({k.lower(): v for k, v in self.headers.items()})
                path = self.path.split("?", 1)[0]
                status, payload, headers = server.handle(method, path, body)
                if server._closed.is_set():  # closed meanwhile: a dead server answers nothing
                    self.close_connection = True
                    return
                self._send(status, payload, headers)

            def _send(self, status: int, payload: Json | bytes, headers: Mapping[str, str]) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout); nothing to tell it

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_GET(self) -> None:
                self._dispatch("GET")

        return Handler


MALFORMED = 0  # a "status" for `fail_next`: a 200 whose body is not JSON (a proxy's error page)
MALFORMED_BODY = b"<html><body>502 Bad Gateway</body></html>"


class FailureQueue:
    """Statuses (with extra headers) to answer the next requests with, in order."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.injected = 0

    def add(self, status: int, count: int, headers: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self._pending += [(status, dict(headers or {}))] * count

    def clear(self) -> None:
        with self._lock:
            self._pending = []

    def take(self) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            if not self._pending:
                return None
            self.injected += 1
            return self._pending.pop(0)


class InjectedFailures:
    """What a server answering from a `FailureQueue` tells and offers its test (each server has its own
    `fail_next`, with its API's usual failure status as the default)."""

    _failures: FailureQueue

    @property
    def failures_injected(self) -> int:
        return self._failures.injected

    def clear_failures(self) -> None:
        """Answer normally again: drop the failures `fail_next` queued and not yet served."""
        self._failures.clear()
