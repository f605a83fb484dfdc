"""Serving the app with uvicorn on an address we bind ourselves, so port 0 (any free port) works and
the caller learns the real URL only once the server is listening."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any

import uvicorn


def is_loopback(host: str) -> bool:
    """Whether `host` is an address of this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def host_problem(host: str) -> str | None:
    """Why `host` cannot be listened on (None: an IP address or a hostname). An empty host would
    bind every interface; a dotted number that is not an IPv4 address (999.1.1.1) is no hostname."""
    if not host.strip():
        return "the host is empty (it would listen on every interface); give an address such as 127.0.0.1"
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        return None
    except ValueError:
        pass
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return f"{host!r} is neither an IP address nor a hostname"
    if all(label.isdigit() for label in labels) or labels[-1].isdigit():
        return f"{host!r} is not a valid IP address"
    return None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (OSError when the address is taken or not ours)."""
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1] as URLs write it
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_listening()


def server(app: Any, sock: socket.socket, on_listening: Callable[[], None] = lambda: None) -> uvicorn.Server:
    """A uvicorn server for `app` on the bound `sock` (run it with `.run(sockets=[sock])`); no access
    log, no lifespan, no proxy headers trusted."""
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", proxy_headers=False,
        server_header=False, date_header=False,
    )  # fmt: skip
    return _Server(config, on_listening)
