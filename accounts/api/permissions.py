from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission

from ..models import Organization, Role
from .errors import Forbidden


class IsOrganizationMember(BasePermission):
    """The caller belongs to an organization (API key or membership) with at least the view's role.

    Views set `required_role` (default viewer) and `required_write_role` (default member) for
    unsafe methods. Resolving the tenant raises 401 for anonymous callers.
    """

    def has_permission(self, request, view) -> bool:
        tenant = view.tenant
        needed = (
            getattr(view, "required_role", Role.VIEWER)
            if request.method in SAFE_METHODS
            else getattr(view, "required_write_role", Role.MEMBER)
        )
        if not tenant.has_role(needed):
            raise Forbidden(
                f"This action needs the {needed} role; you have {tenant.role}.",
                details={"required_role": needed, "role": tenant.role},
            )
        return True


class RequiresPlan(BasePermission):
    """Gate a view to a plan tier (`required_plan` on the view, default pro). 403 with an upgrade pointer."""

    def has_permission(self, request, view) -> bool:
        required = getattr(view, "required_plan", Organization.Plan.PRO)
        organization = view.tenant.organization
        if required == Organization.Plan.PRO and not organization.is_pro:
            raise Forbidden(
                "This endpoint requires the Pro plan. Upgrade your organization to use it.",
                details={"required_plan": required, "plan": organization.plan, "upgrade_url": settings.UPGRADE_URL},
            )
        return True


class ApiKeyOnly(BasePermission):
    """Reject session callers on endpoints meant for API clients and SDKs."""

    def has_permission(self, request, view) -> bool:
        if view.tenant.api_key is None:
            raise Forbidden("This endpoint takes an API key (Authorization: Bearer tl_live_…).")
        return True
