"""A TCP proxy on 127.0.0.1 that injects network failures between the SDK and a real server.

It relays bytes unchanged (it does not parse HTTP), so what reaches the
server is exactly what the SDK sent. Failures, each applied to the next
connections that carry a response:

* ``drop_responses(n)``: forward the request, let the server process it,
  then throw its answer away and close the client's connection: the lost
  response after which a client cannot know whether its events were stored;
* ``delay_responses(n, seconds)``: hold the answer back (past the client's
  timeout, typically) before relaying it;
* ``go_down()`` / ``come_back()``: refuse service, as a restarting server does
  (open connections are cut, new ones accepted and closed at once).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class FaultyProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._drop = 0
        self._delay = 0
        self._delay_seconds = 0.0
        self._down = False
        self._open: set[socket.socket] = set()
        self.dropped = 0
        self.delayed = 0
        self.refused = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def drop_responses(self, count: int) -> None:
        with self._lock:
            self._drop = count

    def delay_responses(self, count: int, seconds: float) -> None:
        with self._lock:
            self._delay, self._delay_seconds = count, seconds

    def go_down(self) -> None:
        """Refuse new connections and cut the open ones, as a restarting server does."""
        self._down = True
        with self._lock:
            open_connections = list(self._open)
        for sock in open_connections:
            _shut(sock)

    def come_back(self) -> None:
        self._down = False

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(2)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._down:
                self.refused += 1
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._upstream, timeout=30)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.add(client)
        awaiting_response = threading.Event()

        def client_to_upstream() -> None:
            try:
                while chunk := client.recv(65536):
                    awaiting_response.set()
                    upstream.sendall(chunk)
            except OSError:
                pass
            finally:
                _shut(upstream)

        threading.Thread(target=client_to_upstream, daemon=True).start()
        try:
            while chunk := upstream.recv(65536):
                if awaiting_response.is_set():  # first bytes of the answer to a request
                    awaiting_response.clear()
                    action = self._next_action()
                    if action == "drop":
                        self.dropped += 1
                        return  # the server answered; the client never hears it
                    if action == "delay":
                        self.delayed += 1
                        time.sleep(self._delay_seconds)
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(client)
            _shut(client)
            _shut(upstream)

    def _next_action(self) -> str | None:
        with self._lock:
            if self._drop > 0:
                self._drop -= 1
                return "drop"
            if self._delay > 0:
                self._delay -= 1
                return "delay"
        return None


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
