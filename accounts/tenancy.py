"""Who is calling, for which organization, with which role: resolved in one place for every view."""

from dataclasses import dataclass

from rest_framework.exceptions import NotAuthenticated

from .api.errors import Forbidden
from .authentication import ApiKeyUser
from .models import ApiKey, Membership, Organization, Role

ORGANIZATION_HEADER = "HTTP_X_ORGANIZATION_ID"


@dataclass(frozen=True)
class Tenant:
    organization: Organization
    role: str
    api_key: ApiKey | None = None

    def has_role(self, role: str) -> bool:
        return Role.rank(self.role) >= Role.rank(role)


def resolve_tenant(request) -> Tenant:
    """The caller's organization: an API key's own, or the signed-in user's membership.

    A user in several organizations picks one with the `X-Organization-Id` header; otherwise
    their oldest membership is used. API keys act with the admin role inside their organization,
    limited by their scopes (`accounts.api.permissions.IsOrganizationMember`).
    """
    user = getattr(request, "user", None)
    if isinstance(user, ApiKeyUser):
        return Tenant(organization=user.organization, role=Role.ADMIN, api_key=user.api_key)
    if user is None or not user.is_authenticated:
        raise NotAuthenticated("Authentication credentials were not provided.")
    memberships = Membership.objects.select_related("organization").filter(user=user)
    wanted = request.META.get(ORGANIZATION_HEADER)
    if wanted:
        memberships = memberships.filter(organization_id=wanted) if _is_uuid(wanted) else memberships.none()
    membership = memberships.order_by("created_at").first()
    if membership is None:
        raise Forbidden("You are not a member of any organization" + (" with that id." if wanted else "."))
    return Tenant(organization=membership.organization, role=membership.role)


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
