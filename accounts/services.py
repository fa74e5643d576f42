"""Write operations on organizations, memberships and API keys."""

import hashlib
import hmac
import secrets
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import ApiKey, Membership, Organization, Role

API_KEY_PREFIX = "tl_live_"
_LOOKUP_CHARS = 12  # random characters after "tl_live_" that are stored in clear for lookup
_LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most once a minute per key


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _lookup_prefix(raw_key: str) -> str:
    return raw_key[: len(API_KEY_PREFIX) + _LOOKUP_CHARS]


@transaction.atomic
def organization_get_or_create(*, name: str, plan: str | None = None) -> tuple[Organization, bool]:
    organization, created = Organization.objects.get_or_create(
        name=name, defaults={"plan": plan or Organization.Plan.FREE}
    )
    if plan and organization.plan != plan:
        organization.plan = plan
        organization.save(update_fields=["plan"])
    return organization, created


@transaction.atomic
def membership_set(*, organization: Organization, user, role: str = Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership


def api_key_create(*, organization: Organization, name: str = "", created_by=None) -> tuple[ApiKey, str]:
    """Create an API key and return it with its secret, which is never stored and never shown again."""
    for _ in range(5):
        raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32).replace("-", "x").replace("_", "y")
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    organization=organization,
                    name=name,
                    prefix=_lookup_prefix(raw_key),
                    key_hash=hash_api_key(raw_key),
                    created_by=created_by,
                )
            return api_key, raw_key
        except IntegrityError:  # lookup prefix collision: astronomically rare, draw again
            continue
    raise RuntimeError("could not allocate a unique API key prefix")


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])  # forgotten by this process's key cache at once
    return api_key


class _VerifiedKeys:
    """Keys this process verified recently, by SHA-256 of the raw key, for API_KEY_CACHE_SECONDS.

    Saves the key lookup (a query) on every API request. What it delays in other processes, by at
    most that many seconds: a revocation and a change of the organization's plan. Only verified,
    active keys are kept; anything else is looked up every time.
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> ApiKey | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, api_key: ApiKey, seconds: float) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + seconds, api_key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_verified_keys = _VerifiedKeys()


def api_key_cache_clear() -> None:
    """Forget every key this process verified (the next request of each looks it up again)."""
    _verified_keys.clear()


def forget_verified_keys(sender=None, **kwargs) -> None:
    """post_save / post_delete receiver for ApiKey and Organization (connected in AccountsConfig.ready)."""
    _verified_keys.clear()


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """Return the active key for ``raw_key``, or None. Constant-time hash comparison.

    A key verified less than API_KEY_CACHE_SECONDS ago in this process is not looked up again.
    """
    if not raw_key.startswith(API_KEY_PREFIX) or len(raw_key) < len(API_KEY_PREFIX) + _LOOKUP_CHARS:
        return None
    key_hash = hash_api_key(raw_key)
    api_key = _verified_keys.get(key_hash)
    if api_key is None:
        api_key = ApiKey.objects.select_related("organization").filter(prefix=_lookup_prefix(raw_key)).first()
        if api_key is None or not hmac.compare_digest(api_key.key_hash, key_hash):
            return None
        if api_key.revoked_at is not None:
            return None
        seconds = settings.API_KEY_CACHE_SECONDS
        if seconds > 0:
            _verified_keys.put(key_hash, api_key, seconds)
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
