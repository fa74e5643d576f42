"""Run localstripe (a stateful fake Stripe server from PyPI) on 127.0.0.1 in a background thread.

Used because the real Stripe API cannot be reached from these machines; the code under test talks
to it through the official `stripe` library exactly as it would to Stripe. Notes on its dialect:
it accepts only `sk_…` secret keys (restricted `rk_…` keys are refused with 401), list endpoints
ignore most filters (status, created), and invoices are produced by subscriptions.
"""

import asyncio
import socket
import threading
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_localstripe() -> str:
    """Start the server and return its base URL once it answers."""
    import localstripe.server
    from aiohttp import web

    port = _free_port()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        web.run_app(localstripe.server.app, host="127.0.0.1", port=port, handle_signals=False, print=None)

    threading.Thread(target=serve, name="localstripe", daemon=True).start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return base_url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("localstripe did not start")


def flush(base_url: str) -> None:
    """Forget every object localstripe holds (between tests)."""
    request = urllib.request.Request(f"{base_url}/_config/data", method="DELETE")
    urllib.request.urlopen(request, timeout=5).close()
