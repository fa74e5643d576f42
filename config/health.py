"""GET /healthz: database and broker status for load balancers and operators.

Anyone may call it, so it says which dependency is down, never why (an exception's text can name
hosts, socket paths or users); the reason goes to the log.
"""

import logging
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any failure means "not healthy"; the log says why
        logger.exception("healthz: the database is down")
        return {"ok": False}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_broker() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "mode": "eager"}
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except redis.RedisError:
        logger.exception("healthz: the broker is down")
        return {"ok": False, "mode": "redis"}
    return {"ok": True, "mode": "redis"}


@require_GET
def healthz(request):
    checks = {"database": _check_database(), "broker": _check_broker()}
    down = [name for name, check in checks.items() if not check["ok"]]
    return JsonResponse(
        {"status": "degraded" if down else "ok", "down": down, **checks}, status=503 if down else 200
    )
