"""A tiny HTTP server on 127.0.0.1 for tests: answers from a script of statuses and records what it got.

Used as a webhook receiver, and as a Stripe that only fails (429/5xx/401), which localstripe cannot
be made to do.
"""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubServer:
    statuses: list[int] = field(default_factory=lambda: [200])  # the last one repeats
    body: bytes = b"{}"
    routes: dict[str, bytes] = field(default_factory=dict)  # path prefix → body, else `body`
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def next_status(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


def start_stub(
    statuses: list[int] | None = None, body: dict | None = None, routes: dict[str, dict] | None = None
) -> tuple[StubServer, ThreadingHTTPServer]:
    stub = StubServer(
        statuses=list(statuses or [200]),
        body=json.dumps(body or {}).encode(),
        routes={prefix: json.dumps(value).encode() for prefix, value in (routes or {}).items()},
    )

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            stub.received.append(Received(self.command, self.path, headers, payload))
            status = stub.next_status()
            body = next((b for prefix, b in stub.routes.items() if self.path.startswith(prefix)), stub.body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return stub, server
