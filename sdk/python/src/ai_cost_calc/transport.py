"""Minimal HTTP/1.1 client on ``http.client`` (standard library only).

One ``Connection`` object keeps one keep-alive socket; it is not thread-safe,
so each thread that talks to the server (the delivery worker, a thread
refreshing the blocklist) uses its own.
"""

from __future__ import annotations

import http.client
import urllib.parse
from dataclasses import dataclass

from ai_cost_calc import __version__

USER_AGENT = f"tokenledger-sdk-python/{__version__}"

# Failures after which a request that went out on an idle keep-alive socket is
# sent again at once on a fresh socket: the server had closed the idle socket.
_STALE_SOCKET_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class TransportError(Exception):
    """The request got no HTTP answer (refused, reset, timed out, bad TLS...)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True, slots=True)
class BaseUrl:
    scheme: str
    host: str
    port: int | None
    path_prefix: str

    @classmethod
    def parse(cls, base_url: str) -> BaseUrl:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port,
            path_prefix=parts.path.rstrip("/"),
        )


class Connection:
    def __init__(self, base_url: BaseUrl, *, api_key: str) -> None:
        self._base = base_url
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self._conn: http.client.HTTPConnection | None = None
        self._used = False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._used = False

    def request(
        self, method: str, path: str, *, body: bytes | None = None, timeout: float
    ) -> HttpResponse:
        """Send one request; raise ``TransportError`` when no HTTP answer came back."""
        reused = self._conn is not None and self._used
        try:
            return self._request_once(method, path, body, timeout)
        except _STALE_SOCKET_ERRORS as exc:
            self.close()
            if not reused:
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        try:
            return self._request_once(method, path, body, timeout)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    def _request_once(
        self, method: str, path: str, body: bytes | None, timeout: float
    ) -> HttpResponse:
        conn = self._conn
        if conn is None:
            cls = (
                http.client.HTTPSConnection
                if self._base.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = self._conn = cls(self._base.host, self._base.port, timeout=timeout)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, self._base.path_prefix + path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        self._used = True
        if response.will_close:
            self.close()
        return HttpResponse(
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=data,
        )
