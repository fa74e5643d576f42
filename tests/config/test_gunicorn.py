"""The repository's gunicorn.conf.py: stalled uploads cannot stop the server from answering."""

import os
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(port: int, timeout: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture
def server():
    port = _free_port()
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "2",
        "GUNICORN_CLIENT_TIMEOUT": "2",
        "GUNICORN_ACCESSLOG": "",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "tests.config.slow_client_app:app"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            _get(port, timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("gunicorn did not start")
    yield port
    process.terminate()
    process.wait(timeout=20)


def test_the_config_uses_threaded_workers_with_a_client_timeout():
    namespace: dict = {}
    exec((REPO_ROOT / "gunicorn.conf.py").read_text(), namespace)
    assert namespace["worker_class"] == "gthread"
    assert namespace["threads"] >= 2 and 0 < namespace["client_timeout"] <= 30


def test_stalled_uploads_do_not_starve_the_server(server):
    stalled = []
    for _ in range(4):  # more stalled uploads than the server has threads
        conn = socket.create_connection(("127.0.0.1", server))
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
        stalled.append(conn)
    try:
        started = time.monotonic()
        answer = _get(server, timeout=40)  # without the client timeout: no answer while they stay open
        elapsed = time.monotonic() - started
    finally:
        for conn in stalled:
            conn.close()

    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"2")
    # The stalled bodies time out after GUNICORN_CLIENT_TIMEOUT (2 s) and free the threads (slack for a busy machine).
    assert elapsed < 30
