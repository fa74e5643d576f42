"""gunicorn settings for TokenLedger: `gunicorn -c gunicorn.conf.py` (the app is config.wsgi).

Slow clients must not starve the workers. A sync worker serves one request at a time and waits, with
no time limit, for a body that trickles in: two stalled uploads stop a 2-worker server. So:

- `gthread` workers with GUNICORN_THREADS threads each: a connection that has sent nothing is parked
  in the worker's poller, not in a thread, and a stalled request holds one thread, not a worker;
- once a request's headers are in, every read of its body and every write of its response must make
  progress within GUNICORN_CLIENT_TIMEOUT seconds, or the connection is dropped (`pre_request`);
- GUNICORN_TIMEOUT restarts a worker whose main loop stops answering.

Headers that trickle in byte by byte still hold a thread until they complete: in production put a
buffering reverse proxy in front (nginx's default `proxy_request_buffering on`, or a cloud load
balancer), which receives the whole request before passing it on (README, "Run in production").
Every setting can be overridden from the environment (names below).
"""

import multiprocessing
import os

wsgi_app = "config.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8)))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Seconds a request's body reads and its response writes may each wait for the client.
client_timeout = float(os.environ.get("GUNICORN_CLIENT_TIMEOUT", "10"))
# Bounded headers: no huge request lines or header blocks.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None  # empty: no access log
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def pre_request(worker, req):
    """Give the client socket a timeout before the app reads the body (gthread sets it blocking,
    without one): a stalled upload ends in a read error after `client_timeout`, freeing the thread."""
    sock = getattr(getattr(req, "unreader", None), "sock", None)
    if sock is not None:
        sock.settimeout(client_timeout)
