"""Fixtures for the SDK's client-behaviour tests.

``stand_in_server`` is a tiny HTTP server on 127.0.0.1 (``http.server`` in a
thread) that records every request and answers in the shapes of
``POST /api/v1/events`` and ``GET /api/v1/budgets/blocklist``. It is a
stand-in used to drive the client's own behaviour (batching, retries,
timing, caching) with failures scripted request by request; the SDK's
behaviour against the real TokenLedger server is tested in
``test_live_server.py``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.body["events"]


# A scripted answer: (status, headers, body as a JSON-able object), or one of
# the actions "close" (drop the connection without answering) or "hang"
# (wait until ``release()`` then answer normally), or a callable taking the
# request and returning one of those.
Answer = tuple[int, dict[str, str], Any] | str | Callable[[RecordedRequest], Any]


@dataclass
class StandInServer:
    url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    script: deque[Answer] = field(default_factory=deque)
    seen_keys: set[str] = field(default_factory=set)
    blocklist: dict[str, Any] = field(
        default_factory=lambda: {
            "version": 1,
            "ttl_seconds": 30,
            "changed": True,
            "recompute_in_progress": False,
            "blocked": {"organization": False, "event_types": [], "customer_ids": []},
        }
    )
    budget_state_version: int = 1
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def then(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def release(self) -> None:
        self.released.set()

    def event_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/api/v1/events"]

    def events(self) -> list[dict[str, Any]]:
        return [event for r in self.event_requests() for event in r.events]

    def blocklist_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith("/api/v1/budgets/blocklist")]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            time.sleep(0.005)

    def default_answer(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        if request.path == "/api/v1/events":
            results = []
            with self.lock:
                for event in request.events:
                    key = event["idempotency_key"]
                    status = "duplicate" if key in self.seen_keys else "created"
                    self.seen_keys.add(key)
                    results.append({"id": len(self.seen_keys), "status": status})
            return 200, {}, {"budget_state_version": self.budget_state_version, "results": results}
        if request.path.startswith("/api/v1/budgets/blocklist"):
            since = None
            if "since_version=" in request.path:
                since = int(request.path.rsplit("since_version=", 1)[1])
            if since is not None and since == self.blocklist["version"]:
                return 200, {}, {
                    "version": self.blocklist["version"],
                    "ttl_seconds": self.blocklist["ttl_seconds"],
                    "changed": False,
                    "recompute_in_progress": False,
                }
            return 200, {}, self.blocklist
        return 404, {}, {"error": {"code": "not_found", "message": "no such path"}}


def _handler_for(server: StandInServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw else None,
                at=time.monotonic(),
            )
            with server.lock:
                server.requests.append(request)
                answer = server.script.popleft() if server.script else None
            if callable(answer):
                answer = answer(request)
            if answer == "close":
                self.close_connection = True
                return
            if answer == "hang":
                server.released.wait(10)
                answer = None
            if answer is None:
                answer = server.default_answer(request)
            status, headers, body = answer
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = _handle
        do_POST = _handle

    return Handler


@pytest.fixture
def stand_in_server() -> Iterator[StandInServer]:
    state = StandInServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        state.release()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def make_client() -> Iterator[Callable[..., Any]]:
    """Build ``AiCostCalc`` clients with fast retry timings; shut them all down afterwards."""
    from ai_cost_calc import AiCostCalc

    clients: list[AiCostCalc] = []

    def build(base_url: str, **tuning: Any) -> AiCostCalc:
        options: dict[str, Any] = {
            "flush_at_exit": False,
            "base_backoff": 0.01,
            "max_backoff": 0.05,
            "flush_interval": 0.05,
        }
        options.update(tuning)
        client = AiCostCalc(api_key="tl_live_test", base_url=base_url, **options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.shutdown(timeout=0.5)
