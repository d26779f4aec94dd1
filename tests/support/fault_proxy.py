"""A fault-injecting HTTP proxy on 127.0.0.1, put in front of a real STAC API in tests.

Faults are scripted per request, in order: ``("status", 429, {"Retry-After": "1"})``, ``("status", 500)``,
``("slow", seconds)``, ``("truncate",)`` (a 200 whose JSON body is cut in half). Requests beyond the
script pass through untouched. Every request is recorded, so tests count what the client really sent.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultProxy:
    def __init__(self, upstream: str, faults: list[tuple[Any, ...]] | None = None):
        self.upstream = upstream.rstrip("/")
        self.faults = list(faults or [])
        self.requests: list[tuple[str, str, str]] = []  # (method, path, what happened)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_fault(self) -> tuple[Any, ...] | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                fault = proxy._next_fault()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                if fault and fault[0] == "status":
                    proxy.requests.append((self.command, self.path, f"status {fault[1]}"))
                    self.send_response(fault[1])
                    for key, value in (fault[2] if len(fault) > 2 else {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault and fault[0] == "slow":
                    time.sleep(fault[1])
                status, headers, payload = self._upstream(body)
                what = "pass"
                if fault and fault[0] == "truncate":
                    payload, what = payload[: len(payload) // 2], "truncated"
                proxy.requests.append((self.command, self.path, what if not fault or fault[0] != "slow" else "slow"))
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value.replace(proxy.upstream, proxy.url))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

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
