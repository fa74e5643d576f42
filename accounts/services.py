"""Write operations on organizations, memberships and API keys."""

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from datetime import timedelta

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from .connection_check import first_statement_checks, reused_connection_lost
from .models import ApiKey, ApiKeyScope, Membership, Organization, Role
from .sql import fetch_one

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


def _clean_scopes(scopes) -> list[str]:
    """Known scopes, each once, in the canonical order; ValueError for an unknown or empty list."""
    wanted = set(scopes)
    unknown = wanted - set(ApiKeyScope.values)
    if unknown or not wanted:
        raise ValueError(f"unknown scopes {sorted(unknown)}" if unknown else "a key needs at least one scope")
    return [scope for scope in ApiKeyScope.values if scope in wanted]


def api_key_create(
    *, organization: Organization, name: str = "", created_by=None, scopes=(ApiKeyScope.ADMIN,)
) -> tuple[ApiKey, str]:
    """Create an API key and return it with its secret, which is never stored and never shown again."""
    scopes = _clean_scopes(scopes)
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
                    scopes=scopes,
                )
            return api_key, raw_key
        except IntegrityError:  # lookup prefix collision: astronomically rare, draw again
            continue
    raise RuntimeError("could not allocate a unique API key prefix")


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])  # the credentials version moves: every process forgets it
    return api_key


def api_key_set_scopes(*, api_key: ApiKey, scopes) -> ApiKey:
    """Replace a key's scopes (ValueError for unknown ones); applies to its next request in every process."""
    api_key.scopes = _clean_scopes(scopes)
    api_key.save(update_fields=["scopes"])
    return api_key


# --- the shared credentials version ---------------------------------------------------------------
# Saving or deleting a key or an organization bumps `Organization.credentials_version` in the writing
# transaction. With REDIS_URL set, a token in the shared cache is also replaced after the commit
# (one token for all organizations: such writes are rare). A process keeps a verified key together
# with the version or token it read *before* reading the key, and uses it only while the shared
# value is unchanged, so a revocation, scope or plan change applies to the next request everywhere.

_TOKEN_CACHE_KEY = "accounts:credentials-token"


def _shared_cache() -> bool:
    return settings.API_KEY_VERSION_IN_CACHE


def _credentials_token() -> str:
    token = cache.get(_TOKEN_CACHE_KEY)
    if token is None:  # first use, or evicted: a fresh token makes every cached key be looked up again
        cache.add(_TOKEN_CACHE_KEY, uuid.uuid4().hex, timeout=None)
        token = cache.get(_TOKEN_CACHE_KEY)
    return token


# Every API request runs it when no shared cache holds the credentials token (no Redis): one
# primary-key read, without the ORM's query compilation (a third of its cost at ingest rates).
_VERSION_SQL = f"SELECT credentials_version FROM {Organization._meta.db_table} WHERE id = %s"  # noqa: S608


def _organization_version(organization_id) -> int | None:
    """The first statement of most API requests without Redis, so it is the request's connection
    health check (accounts.connection_check): Django's own would be one more round trip before it."""
    unchecked = first_statement_checks()
    try:
        return _version_read(organization_id)
    except (InterfaceError, OperationalError, psycopg.InterfaceError, psycopg.OperationalError):
        if not reused_connection_lost(unchecked) or connection.in_atomic_block:
            raise
        connection.close()
        return _version_read(organization_id)


def _version_read(organization_id) -> int | None:
    # Prepared (accounts.sql): bound client-side, PostgreSQL parsed and planned this one-row read on
    # every API request.
    row = fetch_one(_VERSION_SQL, [organization_id])
    return None if row is None else row[0]


def credentials_changed(sender=None, instance=None, **kwargs) -> None:
    """post_save / post_delete receiver for ApiKey and Organization (connected in AccountsConfig.ready)."""
    _verified_keys.clear()
    organization_id = instance.pk if isinstance(instance, Organization) else getattr(instance, "organization_id", None)
    if organization_id is not None:  # a no-op for a deleted organization (its keys are gone too)
        Organization.objects.filter(pk=organization_id).update(credentials_version=F("credentials_version") + 1)
    if _shared_cache():
        transaction.on_commit(lambda: cache.set(_TOKEN_CACHE_KEY, uuid.uuid4().hex, timeout=None))


class _VerifiedKeys:
    """Keys this process verified, by SHA-256 of the raw key, for at most API_KEY_CACHE_SECONDS.

    Saves the key lookup on every API request; each use checks the shared credentials version (one
    cache read with Redis, else one single-row query) so nothing stale is ever used. Only verified,
    active keys are kept; anything else is looked up every time.
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiKey, object]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> tuple[ApiKey, object] | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1], entry[2]

    def put(self, key_hash: str, api_key: ApiKey, version: object, seconds: float) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + seconds, api_key, version)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_verified_keys = _VerifiedKeys()


def api_key_cache_clear() -> None:
    """Forget every key this process verified (the next request of each looks it up again)."""
    _verified_keys.clear()


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """Return the active key for ``raw_key``, or None. Constant-time hash comparison.

    A key verified less than API_KEY_CACHE_SECONDS ago in this process is not looked up again while
    the shared credentials version is the one it was verified at.
    """
    if not raw_key.startswith(API_KEY_PREFIX) or len(raw_key) < len(API_KEY_PREFIX) + _LOOKUP_CHARS:
        return None
    key_hash = hash_api_key(raw_key)
    api_key = None
    cached = _verified_keys.get(key_hash)
    if cached is not None:
        current = (
            _credentials_token() if _shared_cache() else _organization_version(cached[0].organization_id)
        )
        if current == cached[1]:
            api_key = cached[0]
    if api_key is None:
        token = _credentials_token() if _shared_cache() else None  # read before the key: see above
        api_key = ApiKey.objects.select_related("organization").filter(prefix=_lookup_prefix(raw_key)).first()
        if api_key is None or not hmac.compare_digest(api_key.key_hash, key_hash):
            return None
        if api_key.revoked_at is not None:
            return None
        seconds = settings.API_KEY_CACHE_SECONDS
        if seconds > 0:
            version = token if token is not None else api_key.organization.credentials_version
            _verified_keys.put(key_hash, api_key, version, seconds)
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
