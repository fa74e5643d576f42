from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission

from ..models import ApiKeyScope, Organization, Role
from .errors import Forbidden


def required_scopes(view, method: str) -> tuple[str, ...]:
    """The API-key scopes of which one lets a key call ``method`` on ``view`` (admin always does).

    A view sets `required_scope` (every method) or `required_scopes` (`{"POST": "ingest"}`, a scope
    or a tuple of acceptable ones per method); otherwise reads need `read` and writes
    `billing:write`. OPTIONS (the endpoint's metadata) needs no particular scope.
    """
    if method == "OPTIONS":
        return ()
    if getattr(view, "required_scope", None):
        needed = view.required_scope
    else:
        needed = (getattr(view, "required_scopes", None) or {}).get(method)
        if needed is None:
            needed = ApiKeyScope.READ if method in SAFE_METHODS else ApiKeyScope.BILLING_WRITE
    return (needed,) if isinstance(needed, str) else tuple(needed)


class IsOrganizationMember(BasePermission):
    """The caller belongs to an organization (API key or membership) with at least the view's role,
    and an API key caller holds a scope the method needs (`required_scopes`).

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
        api_key = tenant.api_key
        if api_key is not None:
            scopes = required_scopes(view, request.method)
            if scopes and not any(api_key.has_scope(scope) for scope in scopes):
                wanted = " or ".join(scopes)
                raise Forbidden(
                    f"This API key lacks the {wanted} scope (it has {', '.join(api_key.scopes)}).",
                    details={"required_scope": scopes[0], "accepted_scopes": list(scopes), "scopes": api_key.scopes},
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
