"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a STAC API, for the chaos run and the tests.

Faults are given up front (``faults``, or by assigning :attr:`StacFaultProxy.faults`) or queued while it
runs (:meth:`StacFaultProxy.inject`), and applied to the next requests, in order: ``("status", 429)``
(with ``Retry-After: 1`` unless a third element gives the headers), ``("status", 5xx)``,
``("slow", seconds)`` (the answer held back), ``("truncate",)`` (a 200 whose JSON body is cut in half).
Requests beyond the faults pass through untouched. Every request is recorded (:attr:`requests`), every
fault records when a request met it, and the proxy records when the next request after it was answered
whole: the client's recovery.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Fault = tuple[Any, ...]


class StacFaultProxy:
    """Forwards GET/POST to ``upstream``; applies queued faults; rewrites upstream links to itself."""

    def __init__(self, upstream: str, faults: list[Fault] | None = None):
        self.upstream = upstream.rstrip("/")
        self._queue: list[tuple[int, Fault]] = list(enumerate(faults or []))
        self.requests: list[tuple[str, str, str]] = []
        """(method, path, what happened: 'pass', 'status N', 'slow' or 'truncated'), in order."""
        self.met: dict[int, float] = {}
        """Fault number -> when a request met it (monotonic)."""
        self.recovered: dict[int, float] = {}
        """Fault number -> when the next request after it was answered whole (monotonic)."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StacFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, number: int, fault: Fault) -> None:
        """Queue ``fault`` (known as ``number`` in :attr:`met` / :attr:`recovered`) for the next request."""
        with self._lock:
            self._queue.append((number, fault))

    @property
    def faults(self) -> list[Fault]:
        """The faults still to apply, in order; assigning replaces them (numbered from 0)."""
        with self._lock:
            return [fault for _, fault in self._queue]

    @faults.setter
    def faults(self, faults: list[Fault]) -> None:
        with self._lock:
            self._queue = list(enumerate(faults))

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _take(self) -> tuple[int, Fault] | None:
        with self._lock:
            if not self._queue:
                return None
            number, fault = self._queue.pop(0)
            self.met[number] = time.monotonic()
            return number, fault

    def _answered(self) -> None:
        now = time.monotonic()
        with self._lock:
            for number, at in self.met.items():
                if number not in self.recovered and at < now:
                    self.recovered[number] = now


def _handler(proxy: StacFaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def _forward(self) -> None:
            taken = proxy._take()
            fault = taken[1] if taken else None
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            if fault and fault[0] == "status":
                proxy.requests.append((self.command, self.path, f"status {fault[1]}"))
                self.send_response(fault[1])
                default = {"Retry-After": "1"} if fault[1] == 429 else {}
                for key, value in (fault[2] if len(fault) > 2 else default).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault and fault[0] == "slow":
                time.sleep(fault[1])
            status, headers, payload = self._upstream(body)
            whole = not (fault and fault[0] == "truncate")
            if not whole:
                payload = payload[: len(payload) // 2]
            what = "truncated" if not whole else "slow" if fault else "pass"
            proxy.requests.append((self.command, self.path, what))
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(key, value.replace(proxy.upstream, proxy.url))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow answer
                return
            if whole and fault is None and status < 400:
                proxy._answered()

        def _upstream(self, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
            request = urllib.request.Request(proxy.upstream + self.path, data=body, method=self.command)
            for key in ("Content-Type", "Accept"):
                if self.headers.get(key):
                    request.add_header(key, self.headers[key])
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    payload = response.read()
                    status, headers = response.status, list(response.headers.items())
            except urllib.error.HTTPError as err:
                payload, status, headers = err.read(), err.code, list(err.headers.items())
            # links in STAC responses point at the upstream: rewrite them to come back through us
            return status, headers, payload.replace(proxy.upstream.encode(), proxy.url.encode())

    return Handler
