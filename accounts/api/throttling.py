"""Rate limits, with DRF's throttling on the default cache (Redis when REDIS_URL is set, so every
process shares the counts; otherwise per process).

- Per caller: `ingest` (the ingest dialects and the SDK blocklist), `read` (other GETs) and
  `write` (other writes), each its own budget (API_RATE_LIMIT_INGEST / _READ / _WRITE). A caller is
  an API key, or a signed-in person (session) calling the API: each has budgets of their own.
- Per client address: failed API-key authentications and failed sign-ins (API_RATE_LIMIT_AUTH_FAILURES,
  one count for both); past the limit, that address gets 429 before any key is looked up, and its
  sign-ins are refused (accounts.signin), until the window has room again.

An exhausted budget is a 429 `rate_limited` with `Retry-After` (seconds) and
`details.retry_after_seconds`. A rate is `N/second|minute|hour|day`; an empty one turns the limit off.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from ..models import ApiKey, ApiKeyScope
from .permissions import required_scopes


class _Throttle(SimpleRateThrottle):
    """SimpleRateThrottle whose rate is chosen per request instead of once per class."""

    def __init__(self) -> None:  # the parent reads a class-level scope; ours is set in configure()
        self.rate = None
        self.num_requests = self.duration = None

    def configure(self, bucket: str, ident: str) -> bool:
        self.rate = settings.API_RATE_LIMITS.get(bucket) or None
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = f"throttle:{bucket}:{ident}"
        return self.rate is not None

    def history_now(self) -> list[float]:
        self.now = self.timer()
        self.history = [moment for moment in self.cache.get(self.key, []) if moment > self.now - self.duration]
        return self.history


class CallerRateThrottle(_Throttle):
    """Per-caller budgets: an API key's, or a signed-in user's (session). Unauthenticated requests
    are not counted here (they are refused, and failed authentications count per address)."""

    def allow_request(self, request, view) -> bool:
        api_key = request.auth
        if isinstance(api_key, ApiKey):
            caller = str(api_key.pk)
        elif getattr(request.user, "is_authenticated", False) and request.user.pk is not None:
            caller = f"user:{request.user.pk}"
        else:
            return True
        if ApiKeyScope.INGEST in required_scopes(view, request.method):
            bucket = "ingest"
        else:
            bucket = "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write"
        if not self.configure(bucket, caller):
            return True
        if len(self.history_now()) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()


class FailedAuthenticationThrottle(_Throttle):
    """Counts failed API-key authentications and sign-ins per client address (`REST_FRAMEWORK["NUM_PROXIES"]`
    decides whether X-Forwarded-For is trusted, as for every DRF throttle)."""

    def __init__(self, request) -> None:
        super().__init__()
        self.enabled = self.configure("auth_failures", self.get_ident(request))

    def blocked(self) -> bool:
        return self.enabled and len(self.history_now()) >= self.num_requests

    def record_failure(self) -> None:
        if self.enabled:
            self.history_now().insert(0, self.now)
            self.cache.set(self.key, self.history, self.duration)
