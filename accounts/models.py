import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q


class Organization(models.Model):
    """A tenant. Every row of every app belongs to exactly one organization."""

    class Plan(models.TextChoices):
        FREE = "free", "Free"
        PRO = "pro", "Pro"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    plan = models.CharField(max_length=16, choices=Plan.choices, default=Plan.FREE)
    # Bumped (in the writing transaction) whenever one of the organization's keys or the organization
    # itself changes; every process compares it with the version it verified a key at
    # (accounts.services.api_key_authenticate), so a revocation applies everywhere at once.
    credentials_version = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_pro(self) -> bool:
        return self.plan == self.Plan.PRO


class Role(models.TextChoices):
    """Membership roles, weakest first; a role includes every permission of the ones before it."""

    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"

    @classmethod
    def rank(cls, role: str) -> int:
        """The role's place in the order above (ValueError for an unknown one). Every API request
        asks it (the permission check); `cls.values` builds a new list each time."""
        try:
            return _ROLE_RANKS[role]
        except KeyError:
            raise ValueError(f"{role!r} is not a role") from None


_ROLE_RANKS = {value: rank for rank, value in enumerate(Role.values)}


class Membership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_user_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class ApiKeyScope(models.TextChoices):
    """What an API key may do (like Stripe's restricted keys). `admin` includes every other scope.

    ingest: the ingest dialects and the SDK blocklist; read: every GET; billing:write: every other
    write (customers, budgets, billing configuration, credits and top-ups); admin: all of it plus API
    keys and the Stripe account secret.
    """

    INGEST = "ingest", "Ingest"
    READ = "read", "Read"
    BILLING_WRITE = "billing:write", "Billing write"
    ADMIN = "admin", "Admin"


def default_api_key_scopes() -> list[str]:
    return [ApiKeyScope.ADMIN]


class ApiKey(models.Model):
    """An API key. The secret is shown once at creation; only a lookup prefix and its SHA-256 are kept."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=32, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scopes = ArrayField(
        models.CharField(max_length=32, choices=ApiKeyScope.choices),
        default=default_api_key_scopes,
        help_text="ingest, read, billing:write, admin (admin includes the others)",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(key_hash__regex=r"^[0-9a-f]{64}$"), name="api_key_hash_is_sha256"),
            models.CheckConstraint(
                condition=Q(scopes__len__gt=0) & Q(scopes__contained_by=list(ApiKeyScope.values)),
                name="api_key_scopes_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or ApiKeyScope.ADMIN in self.scopes
