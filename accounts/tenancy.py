"""Who is calling, for which organization, with which role: resolved in one place for every view."""

from dataclasses import dataclass

from rest_framework.exceptions import NotAuthenticated

from .api.errors import Forbidden
from .authentication import ApiKeyUser
from .models import ApiKey, Membership, Organization, Role

ORGANIZATION_HEADER = "HTTP_X_ORGANIZATION_ID"
# The organization a signed-in person chose on the dashboard (accounts.views.organization_switch).
SESSION_ORGANIZATION_KEY = "tokenledger.organization_id"


@dataclass(frozen=True)
class Tenant:
    organization: Organization
    role: str
    api_key: ApiKey | None = None

    def has_role(self, role: str) -> bool:
        return Role.rank(self.role) >= Role.rank(role)


def resolve_tenant(request) -> Tenant:
    """The caller's organization: an API key's own, or the signed-in user's membership.

    A user in several organizations picks one with the `X-Organization-Id` header, or on the
    dashboard (kept in their session: the pages and the JSON endpoints they call agree); otherwise
    their oldest membership is used. A session's choice that is no longer a membership falls back
    to the oldest; a header naming no membership is a 403. API keys act with the admin role inside
    their organization, limited by their scopes (`accounts.api.permissions.IsOrganizationMember`).
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
    else:
        chosen = _session_choice(request)
        if chosen and (membership := memberships.filter(organization_id=chosen).first()) is not None:
            return Tenant(organization=membership.organization, role=membership.role)
    membership = memberships.order_by("created_at").first()
    if membership is None:
        raise Forbidden("You are not a member of any organization" + (" with that id." if wanted else "."))
    return Tenant(organization=membership.organization, role=membership.role)


def _session_choice(request) -> str | None:
    session = getattr(request, "session", None)
    chosen = session.get(SESSION_ORGANIZATION_KEY) if session is not None else None
    return chosen if isinstance(chosen, str) and _is_uuid(chosen) else None


def user_memberships(user) -> list[Membership]:
    """The user's memberships with their organizations, by organization name (the switcher's order)."""
    return list(Membership.objects.select_related("organization").filter(user=user).order_by("organization__name"))


def organization_choose(request, organization_id: str) -> Membership | None:
    """Remember the organization a signed-in person chose for their session; None when they are not
    a member of it (nothing is remembered then)."""
    if not _is_uuid(organization_id):
        return None
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=request.user, organization_id=organization_id)
        .first()
    )
    if membership is not None:
        request.session[SESSION_ORGANIZATION_KEY] = str(membership.organization_id)
    return membership


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
